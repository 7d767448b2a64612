"""What is at the storageUri: ``model-not-found`` and ``model-wrong-format``.

From the storage probe (``not-found``, or the file list it saw) and from the predictor's own
words (log lines, ``lastFailureInfo`` ``ModelLoadFailed``). A file list with no file that
looks like a model (a known suffix, or a file named ``model``) counts as the wrong format
even before the server tries to load it. Both need a person: the daemon never writes models.
"""

from __future__ import annotations

import re

from daemon.core.diagnosis.context import Pass
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
_CREDENTIAL_ERROR = re.compile(
    r"NoCredentialsError|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Unable to locate credentials")
_WRONG_FORMAT = re.compile(
    r"unsupported model|not a valid model|cannot load model|could not load model|failed to load model|"
    r"unknown model format",
    re.I,
)


def storage_uri(m: Model) -> str:
    return m.spec.storage_uri or ""


_TREE_FORMATS = ("sklearn", "xgboost", "lightgbm")


def _base(f: str) -> str:
    return f.rsplit("/", 1)[-1]


def _parts(f: str) -> list[str]:
    return [p for p in f.split("/") if p]


def layout_ok(fmt: str | None, files: list[str]) -> bool | None:
    """Whether ``files`` (paths under the storageUri) hold a model of ``fmt``; None: not judged.

    SavedModel: ``saved_model.pb`` (flat or under a numbered version directory); ONNX: a
    ``*.onnx``; Triton: a repository ``<model>/config.pbtxt`` + ``<model>/<version>/...`` (a
    version directory is enough: Triton can generate the config); TorchServe:
    ``config/config.properties`` + ``model-store/*.mar``; Hugging Face: ``config.json`` plus
    weights (``*.safetensors``/``*.bin``); tree models: a file with a model suffix or named
    ``model``; PMML ``*.pmml``; Paddle ``*.pdmodel``. Any other format: not judged.
    """
    names = [_base(f) for f in files]
    if fmt in _TREE_FORMATS:
        return any(n == "model" or n.endswith(MODEL_SUFFIXES) for n in names)
    if fmt == "tensorflow":
        return "saved_model.pb" in names
    if fmt == "onnx":
        return any(n.endswith(".onnx") for n in names)
    if fmt == "triton":
        return any(len(p := _parts(f)) >= 3 and p[-2].isdigit() for f in files)
    if fmt == "pytorch":
        has_props = any(f.endswith("config/config.properties") for f in files)
        has_mar = any(n.endswith(".mar") for n in names)
        return (has_props and has_mar) or (any(n.endswith((".pt", ".pth")) for n in names) and not has_props)
    if fmt == "huggingface":
        return "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names)
    if fmt == "pmml":
        return any(n.endswith(".pmml") for n in names)
    if fmt == "paddle":
        return any(n.endswith(".pdmodel") for n in names)
    return None


_EXPECTED = {
    "tensorflow": "a SavedModel (saved_model.pb, under a numbered version directory such as 1/)",
    "onnx": "an ONNX file (*.onnx)",
    "triton": "a Triton repository: <model>/config.pbtxt and <model>/<version>/<files>",
    "pytorch": "TorchServe's layout: config/config.properties and model-store/*.mar",
    "huggingface": "a Hugging Face model: config.json and *.safetensors (or *.bin) weights",
    "pmml": "a PMML file (*.pmml)",
    "paddle": "a Paddle model (*.pdmodel, *.pdiparams)",
}


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
    # A load that failed on credentials (missing, refused) says nothing about the format.
    wrong_fmt_log = [ln for ln in logs if _WRONG_FORMAT.search(ln) and not _CREDENTIAL_ERROR.search(ln)]
    reason, message = m.failure_reason()
    if reason == "ModelLoadFailed" and _CREDENTIAL_ERROR.search(message):
        reason = None
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
            explains=("storage",),
        )
        return True
    judged = layout_ok(m.spec.format, files) if s is not None and "files" in s.details else None
    bad_files = s is not None and s.outcome == "ok" and judged is False
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
                f"store {_EXPECTED[m.spec.format]} at {uri}"
                if m.spec.format in _EXPECTED
                else "store a model the runtime loads (XGBoost .bst/.json/.ubj or a pickled sklearn/xgboost "
                f"estimator) at {uri}; e.g. python -m serving.train --out DIR and upload DIR/*"
            ),
            explains=("storage",),
        )
        return True
    return False
