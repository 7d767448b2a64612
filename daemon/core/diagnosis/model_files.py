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
from daemon.core.diagnosis.model_layouts import layout_ok, what_to_store
from daemon.core.findings import Code

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


def listing_command(uri: str) -> str | None:
    """The command that lists what is at ``uri`` (None: no common client for the scheme)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    tool = {"s3": "aws s3 ls", "gs": "gsutil ls"}.get(scheme)
    return f"{tool} {uri.rstrip('/')}/" if tool else None


def not_found_remedy(m: Model) -> str:
    """Nothing at the storageUri: what to upload there (for the model's runtime) or where to point."""
    uri = storage_uri(m)
    listing = listing_command(uri)
    return (
        f"{what_to_store(m.spec.format, uri)}, or point spec.predictor.model.storageUri of {m.cfg.key} "
        f"at where it is (kubectl edit inferenceservice {m.cfg.name} -n {m.cfg.namespace})"
        + (f"; check with: {listing}" if listing else "")
    )


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
                else not_found_remedy(m)
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
            remedy=what_to_store(m.spec.format, uri),
            explains=("storage",),
        )
        return True
    return False
