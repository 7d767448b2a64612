"""Reading a model server's answer to the canary: the predicted classes, V1 or V2 protocol.

A V1 answer is ``{"predictions": [...]}``; an Open Inference Protocol (V2) answer has
``outputs`` (``predict`` preferred, else the first), reshaped when it holds class
probabilities. A prediction counts as a class if it is an integer (or an integral float or
string), or a probability vector whose largest entry names it; anything else is a
``ValueError`` with an excerpt of the answer, never a guess.

A canary's expected answers are any JSON values, so the probe compares raw predictions
(:func:`v1_values`, :func:`v2_values`) with :func:`prediction_matches`: an integer expected
value is a class (read with the rule above), a float matches within a relative 1e-3, and
anything else (strings, lists, objects) must be equal, numbers inside them within the same
tolerance.
"""

from __future__ import annotations

import json
import math
from typing import Any

BODY_EXCERPT = 300
"""How much of an unexpected answer becomes evidence."""


def _as_class(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        # Class probabilities (predict_proba): the predicted class is the most likely one.
        return max(range(len(value)), key=lambda i: value[i])
    return None


def parse_v1_predictions(body: Any) -> list[int]:
    """Classes from a V1 answer ``{"predictions": [...]}``; ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise ValueError("answer has no 'predictions' list")
    classes = [_as_class(p) for p in body["predictions"]]
    if any(c is None for c in classes):
        raise ValueError(f"predictions are not classes: {json.dumps(body['predictions'])[:BODY_EXCERPT]}")
    return [c for c in classes if c is not None]


def parse_v2_predictions(body: Any, *, output: str = "predict") -> list[int]:
    """Classes from an Open Inference Protocol answer (output ``predict``, else the first)."""
    data = v2_values(body, output=output)
    classes = [_as_class(v) for v in data]
    if any(c is None for c in classes):
        excerpt = json.dumps(data)[:BODY_EXCERPT]
        raise ValueError(f"output {_chosen(body, output).get('name')!r} holds no classes: {excerpt}")
    return [c for c in classes if c is not None]


def v1_values(body: Any) -> list[Any]:
    """The raw ``predictions`` of a V1 answer; ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise ValueError("answer has no 'predictions' list")
    return list(body["predictions"])


def _chosen(body: Any, output: str) -> dict[str, Any]:
    """The output named ``output`` of a V2 answer, else its first; ValueError if it has none."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise ValueError("answer has no 'outputs' list")
    return dict(next((o for o in outputs if o.get("name") == output), outputs[0]))


def v2_values(body: Any, *, output: str = "predict") -> list[Any]:
    """The raw data of an Open Inference Protocol answer's output, one entry per row."""
    chosen = _chosen(body, output)
    data = chosen.get("data")
    if not isinstance(data, list):
        raise ValueError(f"output {chosen.get('name')!r} has no 'data' list")
    shape = chosen.get("shape")
    if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1:
        width = shape[1]
        data = [data[i:i + width] for i in range(0, len(data), width)]
    return list(data)


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(float(got), float(want), rel_tol=1e-3, abs_tol=1e-9)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)
    return bool(got == want)


def prediction_matches(got: Any, want: Any) -> bool:
    """Whether one raw prediction is the expected answer (see the module docstring)."""
    if isinstance(want, int) and not isinstance(want, bool):
        return _as_class(got) == want
    return _close(got, want)


def shown(got: Any, want: Any) -> Any:
    """How a prediction is reported next to its expected value: as a class when one is expected."""
    if isinstance(want, int) and not isinstance(want, bool):
        cls = _as_class(got)
        return got if cls is None else cls
    return got
