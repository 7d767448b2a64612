"""What checking every tree index at load costs (serving.forest), against XGBoost's own load.

    taskset -c 0 .venv/bin/python bench/serving/forest_check.py [TREES]   # default 1,000 trees

Trains a regression forest of TREES depth-3 trees on the iris features (one tree per round,
so the model has exactly TREES trees), writes it in both formats, and times, median of 15 runs
each: the structural pass that was there before (``check_json`` / ``check_ubjson``), parsing the
document (``json.loads`` / ``serving.ubjson.decode``), ``serving.forest.check_model`` on it,
and ``xgboost.Booster.load_model`` on the same bytes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import xgboost as xgb
from sklearn.datasets import load_iris

from serving import ubjson
from serving.forest import check_model
from serving.wellformed import check_json, check_ubjson

RUNS = 15


def median_ms(fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def row(fmt: str, raw: bytes, structure: Callable[[bytes], None], parse: Callable[[bytes], Any]) -> str:
    doc = parse(raw)
    before = median_ms(lambda: structure(raw))
    parsing = median_ms(lambda: parse(raw))
    checking = median_ms(lambda: check_model(doc))
    xgboost = median_ms(lambda: xgb.Booster().load_model(bytearray(raw)))
    return (f"| {fmt} | {len(raw) / 1e6:.2f} MB | {before:.1f} ms | {parsing:.1f} ms | {checking:.1f} ms "
            f"| {parsing + checking:.1f} ms | {xgboost:.1f} ms |")


def main() -> int:
    trees = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    x, _ = load_iris(return_X_y=True)
    booster = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(x[:, :3], label=x[:, 3]),
                        num_boost_round=trees)
    print(f"{trees} trees, xgboost {xgb.__version__}")
    print("| format | size | structure (before) | parse | check_model | new cost (parse + check) "
          "| XGBoost load_model |")
    print("|---|---|---|---|---|---|---|")
    print(row("json", bytes(booster.save_raw("json")), check_json, json.loads))
    print(row("ubj", bytes(booster.save_raw("ubj")), check_ubjson, ubjson.decode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
