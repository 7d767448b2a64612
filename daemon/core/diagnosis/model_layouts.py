"""What each KServe runtime loads from the storage URI: one table, keyed by model format.

A remedy that says "store a model the runtime loads" must say *which* files, and they differ
per runtime: TorchServe reads ``config/config.properties`` and ``model-store/*.mar``, Triton a
model repository, TensorFlow Serving a numbered SavedModel directory, the sklearn server one
pickled estimator. Advice for one runtime given for another (the XGBoost file names for a
TorchServe model, seen in issue 20) sends a person to fix the wrong thing, so the remedies of
``model-wrong-format`` and ``model-not-found`` are built from this table only, and a format it
does not know gets advice that names no format at all.

Each row is what KServe's own runtimes and documentation say (kserve/kserve ``python/*server``
and ``config/runtimes``, the "Model serving runtimes" pages of kserve.github.io): the runtime
that serves the format out of the box, the files it expects at ``storageUri`` (after the
storage-initializer copied them to ``/mnt/models``) and an example layout.

:func:`layout_ok` judges a file list (from the storage probe) against the row: True when the
files hold what the runtime loads, False when they cannot, None when the format is not judged
(never a guess: a false ``model-wrong-format`` is as bad as a missed one). The tree formats stay
lenient — a file named ``model`` with no extension is what the storage-initializer leaves for a
single-object URI, and servers that load by content (this project's own) take it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Layout:
    """What one model format's runtime loads from the storage URI."""

    format: str
    """The ``modelFormat`` name (or the older predictor key)."""
    runtime: str
    """KServe's runtime that serves it out of the box (ClusterServingRuntime name)."""
    expects: str
    """The files the runtime loads, in words."""
    example: str
    """An example layout under the storage URI."""


_ROWS = (
    Layout(format="sklearn", runtime="kserve-sklearnserver (or kserve-mlserver)",
           expects="exactly one pickled scikit-learn estimator: model.joblib, model.pkl or model.pickle",
           example="<storageUri>/model.joblib"),
    Layout(format="xgboost", runtime="kserve-xgbserver (or kserve-mlserver)",
           expects="one XGBoost booster saved with save_model: model.bst, model.json or model.ubj",
           example="<storageUri>/model.bst"),
    Layout(format="lightgbm", runtime="kserve-lgbserver (or kserve-mlserver)",
           expects="one LightGBM booster saved with save_model: model.bst",
           example="<storageUri>/model.bst"),
    Layout(format="tensorflow", runtime="kserve-tensorflow-serving",
           expects="a TensorFlow SavedModel under a numbered version directory "
                   "(saved_model.pb and variables/)",
           example="<storageUri>/1/saved_model.pb, <storageUri>/1/variables/"),
    Layout(format="pytorch", runtime="kserve-torchserve",
           expects="TorchServe's layout: config/config.properties and the model archive(s) "
                   "in model-store/*.mar",
           example="<storageUri>/config/config.properties, <storageUri>/model-store/<model>.mar"),
    Layout(format="onnx", runtime="kserve-tritonserver",
           expects="an ONNX model file named model.onnx",
           example="<storageUri>/model.onnx"),
    Layout(format="triton", runtime="kserve-tritonserver",
           expects="a Triton model repository: <model>/config.pbtxt and <model>/<version>/<model file>",
           example="<storageUri>/<model>/config.pbtxt, <storageUri>/<model>/1/model.onnx"),
    Layout(format="tensorrt", runtime="kserve-tritonserver",
           expects="a Triton model repository holding a TensorRT plan: <model>/<version>/model.plan",
           example="<storageUri>/<model>/1/model.plan"),
    Layout(format="huggingface", runtime="kserve-huggingfaceserver",
           expects="a Hugging Face model directory: config.json, the weights (*.safetensors or "
                   "pytorch_model.bin) and the tokenizer files",
           example="<storageUri>/config.json, <storageUri>/model.safetensors, <storageUri>/tokenizer.json"),
    Layout(format="pmml", runtime="kserve-pmmlserver",
           expects="exactly one PMML document: model.pmml",
           example="<storageUri>/model.pmml"),
    Layout(format="paddle", runtime="kserve-paddleserver",
           expects="a Paddle inference model: *.pdmodel and *.pdiparams",
           example="<storageUri>/inference.pdmodel, <storageUri>/inference.pdiparams"),
    Layout(format="mlflow", runtime="kserve-mlserver",
           expects="an MLflow model directory: the MLmodel file and the artifacts it names",
           example="<storageUri>/MLmodel, <storageUri>/model.pkl, <storageUri>/requirements.txt"),
)

LAYOUTS: dict[str, Layout] = {row.format: row for row in _ROWS}


def layout_for(fmt: str | None) -> Layout | None:
    """The row for ``fmt`` (None: a custom container, or a format this table does not know)."""
    return LAYOUTS.get(fmt) if fmt else None


def what_to_store(fmt: str | None, uri: str) -> str:
    """The remedy's clause naming what to put at ``uri`` for a model of ``fmt``."""
    row = layout_for(fmt)
    if row is None:
        what = (f"a model the runtime's server loads (modelFormat {fmt})" if fmt
                else "the model the server loads")
        return f"store {what} at {uri}; the runtime's documentation names the files it reads"
    return f"store {row.expects} at {uri} ({row.runtime} loads it; e.g. {row.example})"


# File names the lenient tree-format check accepts (see the module docstring).
MODEL_SUFFIXES = (
    ".bst", ".json", ".ubj", ".pkl", ".pickle", ".joblib", ".onnx", ".pt", ".pth", ".model", ".txt",
    ".cbm", ".h5", ".keras", ".safetensors",
)
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
    ``model``; PMML ``*.pmml``; Paddle ``*.pdmodel``; MLflow an ``MLmodel`` file. Any other
    format: not judged.
    """
    names = [_base(f) for f in files]
    if fmt in _TREE_FORMATS:
        return any(n == "model" or n.endswith(MODEL_SUFFIXES) for n in names)
    if fmt == "tensorflow":
        return "saved_model.pb" in names
    if fmt == "onnx":
        return any(n.endswith(".onnx") for n in names)
    if fmt in ("triton", "tensorrt"):
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
    if fmt == "mlflow":
        return "MLmodel" in names
    return None
