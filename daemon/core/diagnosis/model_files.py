"""What is at the storageUri: ``model-not-found`` and ``model-wrong-format``.

From the storage probe (``not-found``, or the file list it saw) and from the predictor's own
words (log lines, ``lastFailureInfo`` ``ModelLoadFailed``). A file list with no file that
looks like a model (a known suffix, or a file named ``model``) counts as the wrong format
even before the server tries to load it. Both need a person: the daemon never writes models.
"""

from __future__ import annotations

import re

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import predictor_spec
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code

MODEL_SUFFIXES = (
    ".bst",
    ".json",
    ".ubj",
    ".pkl",
    ".pickle",
    ".joblib",
    ".onnx",
    ".pt",
    ".pth",
    ".model",
    ".txt",
    ".cbm",
    ".h5",
    ".keras",
    ".safetensors",
)
_NOT_FOUND = re.compile(r"model file not found|no model (file )?found|FileNotFoundError|NoSuchKey", re.I)
_WRONG_FORMAT = re.compile(
    r"unsupported model|not a valid model|cannot load model|could not load model|failed to load model|"
    r"unknown model format",
    re.I,
)


def storage_uri(m: Model) -> str:
    return str((predictor_spec(m.isvc).get("model") or {}).get("storageUri", ""))


def stored_files_line(m: Model) -> str | None:
    """``storage <uri> holds: a, b`` from the storage probe's file list (None when it saw none)."""
    files = stored_files(m)
    return f"storage {storage_uri(m)} holds: {', '.join(files)}" if files else None


def stored_files(m: Model) -> list[str]:
    s = m.storage
    return [str(f) for f in (s.details.get("files") or [])] if s is not None else []


def model_files(ctx: Pass, m: Model) -> bool:
    """Whether a finding about the stored model was added (then the model is explained)."""
    s = m.storage
    uri = storage_uri(m)
    logs = m.log_lines()
    not_found_log = [ln for ln in logs if _NOT_FOUND.search(ln)]
    wrong_fmt_log = [ln for ln in logs if _WRONG_FORMAT.search(ln)]
    reason, message = m.failure_reason()
    files = stored_files(m)
    files_line = stored_files_line(m)
    if (s is not None and s.outcome == "not-found") or not_found_log:
        ev = (list(s.evidence) if s is not None and s.outcome == "not-found" else []) + not_found_log[:3]
        if files_line:
            ev.append(files_line)
        ctx.explain(
            m,
            code=Code.MODEL_NOT_FOUND,
            evidence=ev,
            remedy=(
                (
                    f"the model is there ({', '.join(files)}) but the server looks for another "
                    "file name: serve it with a runtime that loads the model by content (the "
                    "desired ServingRuntime's image does), or store it under the name the server "
                    "expects"
                )
                if files and not_found_log
                else (
                    f"upload the model to {uri} or point spec.predictor.model.storageUri "
                    f"of {m.cfg.key} at it "
                    f"(kubectl edit inferenceservice {m.cfg.name} -n {m.cfg.namespace}); "
                    "check with: aws s3 ls " + uri.rstrip("/") + "/"
                )
            ),
        )
        return True
    looks_like_model = any(f.rsplit("/", 1)[-1] == "model" or f.endswith(MODEL_SUFFIXES) for f in files)
    bad_files = s is not None and s.outcome == "ok" and "files" in s.details and not looks_like_model
    if bad_files or wrong_fmt_log or reason == "ModelLoadFailed":
        ev = wrong_fmt_log[:3]
        if reason == "ModelLoadFailed":
            ev.append(f"lastFailureInfo ModelLoadFailed: {message}".rstrip(": "))
        if files_line or bad_files:
            ev.append(files_line or f"storage {uri} holds no files")
        ctx.explain(
            m,
            code=Code.MODEL_WRONG_FORMAT,
            evidence=ev,
            remedy=(
                "store a model the runtime loads (XGBoost .bst/.json/.ubj or a pickled sklearn/xgboost "
                f"estimator) at {uri}; e.g. python -m serving.train --out DIR and upload DIR/*"
            ),
        )
        return True
    return False
