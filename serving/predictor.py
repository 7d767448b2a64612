"""Predictors: what a loaded model can answer, behind one small interface.

``Predictor.run(x, want_proba=...)`` takes a float32 ``(rows, features)`` array of finite values
(the HTTP layer has validated it) and returns :class:`Outputs` — class ids (``predict``) and,
when asked for and available, class probabilities (``predict_proba``).

* :class:`BoosterPredictor` — a native XGBoost ``Booster`` (or the one inside an
  ``XGBClassifier``). Classes are ``argmax`` of the probabilities, exactly as
  ``XGBClassifier.predict`` computes them. Batches up to ``BINNED_MAX_ROWS`` go through
  :mod:`serving.binned`'s lookup tables (bit-identical, one matrix product per call), else up
  to ``COMPILED_MAX_ROWS`` through :mod:`serving.trees`' walker (bit-identical too, for models
  whose tables would be too large), each only if it passed the load-time self-check against
  the booster; the rest through ``inplace_predict`` (crossovers measured, see bench/README.md).
* :class:`EstimatorPredictor` — any unpickled object with ``predict`` (scikit-learn
  estimators and pipelines), with ``predict_proba`` when it has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from serving.binned import BinnedTrees
from serving.trees import CompiledTrees, probe_rows

F32 = npt.NDArray[np.float32]


class _Fast(Protocol):
    def predict_proba(self, x: F32) -> F32: ...


T = TypeVar("T", bound=_Fast)

# Up to this many rows the numpy walker beats inplace_predict (~100 µs fixed cost): measured with
# bench/serving/walker.py, 113 vs 122 µs at 32 rows, 205 vs 159 µs at 64.
COMPILED_MAX_ROWS = 32
# Up to this many rows the binned tables beat inplace_predict on the iris model (bench/serving/walker.py:
# 56 vs 199 µs at 32 rows, 1.6 vs 3.0 ms at 2048, even at 4096); above it their temporaries (trees x
# rows indices, ~10 MB at 2048 rows) grow while XGBoost streams.
BINNED_MAX_ROWS = 2048
# Rows checked against XGBoost before the walker is trusted.
SELF_CHECK_ROWS = 4096


@dataclass(frozen=True)
class Outputs:
    predict: npt.NDArray[Any]
    predict_proba: F32 | None


class Predictor(Protocol):
    kind: str
    n_features: int | None
    has_proba: bool

    def run(self, x: F32, *, want_proba: bool) -> Outputs: ...


class BoosterPredictor:
    """An XGBoost booster; ``multi:softprob`` / ``binary:logistic`` give classes and probabilities,
    other objectives give XGBoost's raw prediction as ``predict``."""

    def __init__(self, booster: Any, *, nthread: int = 1) -> None:
        booster.set_param({"nthread": nthread})
        self._booster = booster
        self.n_features: int | None = int(booster.num_features())
        doc = json.loads(bytes(booster.save_raw("json")))
        self.objective: str = doc["learner"]["objective"]["name"]
        self.has_proba = self.objective in ("multi:softprob", "binary:logistic")
        compiled = CompiledTrees.from_booster_json(doc)
        self.compiled = self._self_checked(compiled, compiled)
        tables = BinnedTrees.from_compiled(self.compiled) if self.compiled is not None else None
        self.binned = self._self_checked(compiled, tables)
        self.kind = ("xgboost+binned-tables" if self.binned is not None
                     else "xgboost+numpy-walker" if self.compiled is not None else "xgboost")

    def _self_checked(self, trees: CompiledTrees | None, fast: T | None) -> T | None:
        """Trust a fast path only if it reproduces XGBoost exactly on inputs at every split edge."""
        if trees is None or fast is None:
            return None
        x = probe_rows(trees, n=SELF_CHECK_ROWS)
        ref = np.asarray(self._booster.inplace_predict(x), dtype=np.float32)
        mine = fast.predict_proba(x)
        return fast if ref.shape == mine.shape and bool(np.array_equal(ref, mine)) else None

    def _xgb(self, x: F32) -> npt.NDArray[Any]:
        return np.asarray(self._booster.inplace_predict(x))

    def run(self, x: F32, *, want_proba: bool) -> Outputs:
        if self.binned is not None and x.shape[0] <= BINNED_MAX_ROWS:
            proba = self.binned.predict_proba(x)
        elif self.compiled is not None and x.shape[0] <= COMPILED_MAX_ROWS:
            proba = self.compiled.predict_proba(x)
        elif self.has_proba:
            proba = self._xgb(x).astype(np.float32, copy=False)
            if self.objective == "binary:logistic":
                proba = np.stack([1 - proba, proba], axis=1).astype(np.float32)
        else:
            return Outputs(predict=self._xgb(x), predict_proba=None)
        # np.argmax takes the first maximum, like XGBClassifier.predict.
        return Outputs(predict=np.argmax(proba, axis=1), predict_proba=proba if want_proba else None)


class EstimatorPredictor:
    """An unpickled estimator (scikit-learn API): ``predict`` and maybe ``predict_proba``."""

    def __init__(self, estimator: Any) -> None:
        self._est = estimator
        n = getattr(estimator, "n_features_in_", None)
        self.n_features = int(n) if n is not None else None
        self.has_proba = callable(getattr(estimator, "predict_proba", None))
        self.kind = f"estimator:{type(estimator).__module__.split('.')[0]}.{type(estimator).__name__}"

    def run(self, x: F32, *, want_proba: bool) -> Outputs:
        pred = np.asarray(self._est.predict(x))
        proba = None
        if want_proba and self.has_proba:
            proba = np.asarray(self._est.predict_proba(x), dtype=np.float32)
        return Outputs(predict=pred, predict_proba=proba)
