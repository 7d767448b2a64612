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
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _load_pickle(path: Path, nthread: int) -> Predictor:
    import joblib  # handles plain pickles and joblib's compressed files alike
    import xgboost as xgb

    obj: Any = joblib.load(path)
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


def load_model(model_dir: Path, *, nthread: int = 1) -> LoadedModel:
    """Load the first real model in ``model_dir`` (see module docstring) or raise ModelLoadError."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist or is not a directory")
    files = candidates(model_dir)
    failures: list[str] = []
    for i, path in enumerate(files):
        if path.name in SIDECARS:
            failures.append(f"{path.name}: skipped (a metadata file, not a model)")
            continue
        t0 = time.perf_counter()
        try:
            raw = path.read_bytes()
            fmt = sniff(raw[:16])
            predictor = _load_pickle(path, nthread) if fmt == "pickle" else _load_booster(raw, fmt, nthread)
        except Exception as exc:  # every failure is reported, none is fatal until all have failed
            failures.append(f"{path.name} ({path.stat().st_size} bytes, looks like {sniff(_head(path))}): "
                            f"{_short(exc)}")
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


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(16)
    except OSError:
        return b""
