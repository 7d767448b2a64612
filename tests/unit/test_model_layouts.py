"""What each runtime loads from the storage URI (daemon.core.diagnosis.model_layouts): the table
the model-format remedies are built from, so a TorchServe model never gets XGBoost advice."""

from __future__ import annotations

import pytest

from daemon.core.diagnosis.model_layouts import LAYOUTS, layout_for, what_to_store

# (format, the runtime KServe ships for it, files the advice must name) — from KServe's runtimes
# (config/runtimes of kserve/kserve v0.20.0) and its servers' loaders (python/*server).
ROWS = [
    ("sklearn", "kserve-sklearnserver", ["model.joblib", "model.pkl", "model.pickle"]),
    ("xgboost", "kserve-xgbserver", ["model.bst", "model.json", "model.ubj"]),
    ("lightgbm", "kserve-lgbserver", ["model.bst"]),
    ("tensorflow", "kserve-tensorflow-serving", ["saved_model.pb", "version directory"]),
    ("pytorch", "kserve-torchserve", ["config/config.properties", "model-store/*.mar"]),
    ("onnx", "kserve-tritonserver", ["model.onnx"]),
    ("triton", "kserve-tritonserver", ["config.pbtxt", "<version>"]),
    ("huggingface", "kserve-huggingfaceserver", ["config.json", "safetensors"]),
    ("pmml", "kserve-pmmlserver", ["model.pmml"]),
    ("paddle", "kserve-paddleserver", [".pdmodel", ".pdiparams"]),
    ("mlflow", "kserve-mlserver", ["MLmodel"]),
]


@pytest.mark.parametrize(("fmt", "runtime", "files"), ROWS, ids=[r[0] for r in ROWS])
def test_each_format_gets_its_runtimes_files(fmt: str, runtime: str, files: list[str]) -> None:
    row = layout_for(fmt)
    assert row is not None and runtime in row.runtime
    advice = what_to_store(fmt, "gs://b/m")
    for f in files:
        assert f in advice, (f, advice)
    assert "gs://b/m" in advice
    if fmt != "xgboost":
        assert "XGBoost" not in advice and ".ubj" not in advice, advice


def test_the_table_covers_every_format_of_the_issue() -> None:
    assert {r[0] for r in ROWS} <= set(LAYOUTS)


@pytest.mark.parametrize("fmt", [None, "catboost", "custom-thing"])
def test_an_unknown_format_gets_no_format_specific_advice(fmt: str | None) -> None:
    advice = what_to_store(fmt, "s3://b/m")
    for words in ("XGBoost", ".bst", ".joblib", "TorchServe", "SavedModel", "model.onnx"):
        assert words not in advice, advice
    assert "s3://b/m" in advice
