"""Load a model from a directory by what its files contain, never by what they are called.

KServe's storage-initializer may leave ``/mnt/models/model`` with no extension; the seed's
server looked for ``model.json``, found nothing, and served a dummy model for hours. Here:

* every regular file in the directory is a candidate, tried in a fixed order: ``model``,
  ``model.json``, ``model.ubj``, ``model.bst``, ``model.pkl``, ``model.pickle``,
  ``model.joblib``, then the remaining files by name — so a directory holding the same model
  as ``model.json`` + ``model.ubj`` + ``model.bst`` deterministically serves ``model.json``;
* each file's first bytes decide how it is read: ``{`` + JSON text → XGBoost JSON,
  ``{`` + a UBJSON marker → XGBoost UBJSON, a pickle opcode or a compressor's magic →
  joblib/pickle, anything else → XGBoost's legacy binary reader;
* the first file that loads wins; if none does, :class:`ModelLoadError` lists every file
  found and why each one failed. There is no fallback model of any kind.

A JSON or UBJSON model reaches XGBoost only once it is one complete document
(:mod:`serving.wellformed`) whose every tree index is in range (:mod:`serving.forest`):
XGBoost's parser and predictor kill the process on input that fails either check.

Pickle and joblib files execute code when loaded. Like KServe's sklearnserver, we load them
because the model directory is the operator's own artifact (downloaded by their own storage
initializer from their own bucket); do not point ``--model_dir`` at files you do not trust.
For the same reason a booster inside a pickle is not checked by :mod:`serving.forest`:
unpickling hands its bytes to XGBoost before any code of ours could look at them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from serving import ubjson
from serving.forest import check_model
from serving.predictor import BoosterPredictor, EstimatorPredictor, Predictor
from serving.wellformed import MalformedModel, check_json, check_ubjson

PREFERRED = ("model", "model.json", "model.ubj", "model.bst", "model.pkl", "model.pickle", "model.joblib")
# Files a model directory commonly holds next to the model; listed, never loaded.
SIDECARS = frozenset({"metadata.json", "model-settings.json", "README.md"})
_UBJSON_MARKERS = frozenset(b"L$#iUIlmdDCSTFZN[")
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x04\x22\x4d\x18", b"\x78\x01", b"\x78\x5e", b"\x78\x9c",
               b"\x78\xda")


class ModelLoadError(Exception):
    """No real model could be loaded; the message says what was found and why it failed."""


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    format: str  # "xgboost-json", "xgboost-ubjson", "xgboost-binary", "pickle"
    sha256: str
    size_bytes: int
    load_seconds: float
    predictor: Predictor
    skipped: tuple[str, ...] = ()  # other candidate files present but not used


def sniff(head: bytes) -> str:
    """Guess a model file's format from its first bytes."""
    if head[:1] == b"{" and head[1:2] and head[1] in _UBJSON_MARKERS:
        return "xgboost-ubjson"  # UBJSON objects open with `{` then a type marker (`{L`, `{$`, ...)
    if head.lstrip()[:1] == b"{":
        return "xgboost-json"
    if head[:1] == b"\x80" or head.startswith(_COMPRESSED):
        return "pickle"
    return "xgboost-binary"


def _short(exc: BaseException) -> str:
    """First meaningful line of an error; XGBoost's carry a timestamp/source prefix and a stack."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith("[") and "]" in text:
        text = text.split("]", 1)[1].strip()
        if ": " in text and "/" in text.split(": ", 1)[0]:
            text = text.split(": ", 1)[1]
    return f"{type(exc).__name__}: {text[:200]}"


def _load_booster(raw: bytes, fmt: str, nthread: int) -> Predictor:
    import xgboost as xgb

    # XGBoost's parser kills the process on some broken input (see serving.wellformed), so it
    # only ever sees a buffer that is one complete document; and its predictor follows tree
    # indices unchecked (see serving.forest), so it only ever sees a forest whose indices hold.
    if not raw:
        raise MalformedModel("the file is empty (0 bytes); still being written?")
    if fmt == "xgboost-ubjson":
        check_ubjson(raw)
        check_model(ubjson.decode(raw))
    elif fmt == "xgboost-json":
        check_json(raw)
        check_model(_parse_json(raw))
    # Anything else: XGBoost 3 reads JSON and UBJSON only and refuses the rest with its own error.
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return BoosterPredictor(booster, nthread=nthread)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedModel(f"not a JSON document: {exc}") from exc


def _load_pickle(raw: bytes, nthread: int) -> Predictor:
    import joblib  # handles plain pickles and joblib's compressed files alike
    import xgboost as xgb

    obj: Any = joblib.load(io.BytesIO(raw))  # the bytes already read: the file is read once
    if isinstance(obj, xgb.Booster):
        return BoosterPredictor(obj, nthread=nthread)
    if isinstance(obj, xgb.XGBModel):
        return BoosterPredictor(obj.get_booster(), nthread=nthread)
    if not callable(getattr(obj, "predict", None)):
        raise TypeError(f"unpickled a {type(obj).__module__}.{type(obj).__name__}, which has no predict()")
    return EstimatorPredictor(obj)


def candidates(model_dir: Path) -> list[Path]:
    files = [p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    rank = {name: i for i, name in enumerate(PREFERRED)}
    return sorted(files, key=lambda p: (rank.get(p.name, len(PREFERRED)), p.name))


class Reader(Protocol):
    """How the loader reads a candidate file's bytes (``Path.read_bytes`` unless told otherwise)."""

    def __call__(self, path: Path) -> bytes: ...


def read_file(path: Path) -> bytes:
    return path.read_bytes()


@dataclass(frozen=True)
class FileIdentity:
    """What tells a file apart from the one read before: same size, mtime and inode, same file
    (as ``make`` and rsync judge). A rewrite in place changes the mtime; a rename-over the inode.
    (A file deleted and re-created between two polls with the same size, in the same mtime tick
    and on a recycled inode would pass for unchanged: a deletion seen by a poll forgets it.)"""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, device=st.st_dev)


class Refusals:
    """Files already refused, by name and identity, with why (``--wait-for-model``).

    A refused file is not read again while it stays the same (its earlier reason stands), and
    once it changes, only after it has stopped changing: seen with the same identity at two
    looks in a row. A copy still in progress is then read once it is complete, not at every look
    (the watcher used to re-read a 600 MB unloadable file every second). Only identities and
    reasons are kept, never a file's bytes.
    """

    def __init__(self) -> None:
        # name -> (identity when refused, why, identity at the last look)
        self._known: dict[str, tuple[FileIdentity, str, FileIdentity]] = {}

    def unread(self, name: str, identity: FileIdentity) -> str | None:
        """Why ``name`` is not worth reading now, or None to read it."""
        known = self._known.get(name)
        if known is None:
            return None
        refused, reason, seen = known
        if identity == refused:
            return reason
        if identity == seen:
            return None  # changed since refused, and the same as at the last look: settled
        self._known[name] = (refused, reason, identity)
        return f"{name} ({identity.size} bytes): changed since it was refused; read once it stops changing"

    def remember(self, name: str, identity: FileIdentity, reason: str) -> None:
        self._known[name] = (identity, reason, identity)

    def keep_only(self, names: set[str]) -> None:
        for name in self._known.keys() - names:
            del self._known[name]


def load_model(model_dir: Path, *, nthread: int = 1, read: Reader = read_file,
               refusals: Refusals | None = None) -> LoadedModel:
    """Load the first real model in ``model_dir`` (see module docstring) or raise ModelLoadError.

    With ``refusals``, a file refused before is read again only once it has changed and then
    stopped changing (:class:`Refusals`, :class:`FileIdentity`). ``read`` reads every byte the
    loader reads."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist or is not a directory")
    files = candidates(model_dir)
    if refusals is not None:
        refusals.keep_only({p.name for p in files})
    failures: list[str] = []
    for i, path in enumerate(files):
        if path.name in SIDECARS:
            failures.append(f"{path.name}: skipped (a metadata file, not a model)")
            continue
        try:
            # Before the read: a file still changing during the read then differs next time.
            identity = FileIdentity.of(path.stat())
        except OSError as exc:  # gone since the directory was listed
            failures.append(f"{path.name}: {_short(exc)}")
            continue
        unread = refusals.unread(path.name, identity) if refusals is not None else None
        if unread is not None:
            failures.append(unread)
            continue
        t0 = time.perf_counter()
        head: bytes | None = None
        try:
            raw = read(path)
            head = raw[:16]
            fmt = sniff(head)
            predictor = _load_pickle(raw, nthread) if fmt == "pickle" else _load_booster(raw, fmt, nthread)
        except Exception as exc:  # every failure is reported, none is fatal until all have failed
            raw = b""  # a refused file's bytes are not kept, not even until the next file
            looks = "unreadable" if head is None else f"looks like {sniff(head)}"
            reason = f"{path.name} ({identity.size} bytes, {looks}): {_short(exc)}"
            if refusals is not None:
                refusals.remember(path.name, identity, reason)
            failures.append(reason)
            continue
        return LoadedModel(
            path=path,
            format=fmt,
            sha256=hashlib.sha256(raw).hexdigest(),
            size_bytes=len(raw),
            load_seconds=time.perf_counter() - t0,
            predictor=predictor,
            skipped=tuple(p.name for p in files[i + 1:]),
        )
    if not files:
        raise ModelLoadError(f"no model in {model_dir}: the directory is empty "
                             f"(expected one of {', '.join(PREFERRED)}, any name works)")
    raise ModelLoadError(f"no model could be loaded from {model_dir}; found {len(files)} file(s):\n  - "
                         + "\n  - ".join(failures))
