"""Corrupt trees never reach XGBoost: each is refused at load with its reason, in both formats.

Before :mod:`serving.forest`, four of these killed the process (SIGSEGV, exit 139) when made from
the iris model ``python -m serving.train`` writes: a left child out of range, a negative left
child, a child pointing back at its own node (all three load, then die on the first predict) and
``tree_info[0] = 1000`` (dies inside ``load_model``). Here each corrupt file is loaded by the
loader in this very process: a crash would end the test run, not fail one test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.loader import ModelLoadError, load_model
from serving.train import train
from serving.ubjson import decode
from tests.unit.model_files import CORRUPTIONS, IRIS_CRASHERS, Doc, Mutation, parsed, to_bytes

FORMATS = ("json", "ubj")
SETOSA = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)

@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The iris model as ``python -m serving.train`` writes it, in both formats."""
    out = tmp_path_factory.mktemp("iris")
    return {"json": train(out=out, seed=42).model_path.read_bytes(),
            "ubj": train(out=out, seed=42, name="model.ubj").model_path.read_bytes()}


def _parse(raw: bytes, fmt: str) -> Doc:
    doc: Doc = json.loads(raw) if fmt == "json" else decode(raw)
    return doc


def _refused(model_dir: Path, data: bytes) -> str:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model").write_bytes(data)  # extensionless, as KServe's storage-initializer leaves it
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    return str(err.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "mutate", "reason"), IRIS_CRASHERS, ids=[c[0] for c in IRIS_CRASHERS])
def test_the_issues_crashers_are_refused_and_the_good_model_then_serves(
        iris: dict[str, bytes], tmp_path: Path, fmt: str, case: str, mutate: Mutation, reason: str) -> None:
    doc = _parse(iris[fmt], fmt)
    mutate(doc)
    message = _refused(tmp_path, to_bytes(doc, fmt))
    assert reason in message and "CorruptModel" in message, message
    (tmp_path / "model").write_bytes(iris[fmt])  # the same directory, the model fixed: it serves
    assert load_model(tmp_path).predictor.run(SETOSA, want_proba=False).predict.tolist() == [0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "name", "mutate", "reason"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_every_corrupt_index_array_is_refused_at_load(
        tmp_path: Path, fmt: str, case: str, name: str, mutate: Mutation, reason: str) -> None:
    doc = parsed(name, fmt)
    mutate(doc)
    message = _refused(tmp_path, to_bytes(doc, fmt))
    assert reason in message, message


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_trained_model_itself_loads_in_both_formats(iris: dict[str, bytes], tmp_path: Path,
                                                        fmt: str) -> None:
    (tmp_path / "model").write_bytes(iris[fmt])
    model = load_model(tmp_path)
    assert model.format == ("xgboost-json" if fmt == "json" else "xgboost-ubjson")
    out: Any = model.predictor.run(SETOSA, want_proba=True)
    assert out.predict.tolist() == [0]
