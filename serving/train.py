"""Train the iris classifier: ``python -m serving.train --out DIR [--seed N] [--name FILE]``.

XGBoost on scikit-learn's bundled iris data (``load_iris``: no download), a stratified 80/20
split held out for the printed accuracy, one thread (XGBoost's ``hist`` trainer is
deterministic for a fixed seed and thread count, so the same seed writes a byte-identical
file). Writes ``DIR/<name>`` in XGBoost's own format — JSON by default (``model.json``);
``--name model`` writes the extensionless file KServe's storage-initializer leaves (still
JSON inside); a ``.ubj`` name writes UBJSON — and ``DIR/metadata.json`` (classes, feature
names, accuracy, xgboost version, the model file's sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    metadata_path: Path
    accuracy: float
    n_train: int
    n_test: int
    seed: int
    xgboost_version: str
    sha256: str


def train(*, out: Path, seed: int = 42, name: str = "model.json") -> TrainResult:
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=seed)
    clf = xgb.XGBClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, objective="multi:softprob",
                            tree_method="hist", random_state=seed, n_jobs=1)
    clf.fit(x_train, y_train)
    accuracy = float(np.mean(clf.predict(x_test) == y_test))

    out.mkdir(parents=True, exist_ok=True)
    model_path = out / name
    # save_raw + our own write: XGBoost picks the format from the file extension and warns on
    # an unknown one (e.g. no extension); the format here is explicit instead.
    fmt = "ubj" if model_path.suffix == ".ubj" else "json"
    raw = bytes(clf.get_booster().save_raw(fmt))
    model_path.write_bytes(raw)
    sha = hashlib.sha256(raw).hexdigest()
    meta = {
        "model_file": name,
        "format": f"xgboost-{fmt}",
        "sha256": sha,
        "classes": [str(c) for c in iris.target_names],
        "class_ids": list(range(len(iris.target_names))),
        "feature_names": [str(f) for f in iris.feature_names],
        "accuracy": accuracy,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "seed": seed,
        "xgboost_version": xgb.__version__,
    }
    metadata_path = out / "metadata.json"
    metadata_path.write_text(json.dumps(meta, indent=2) + "\n")
    return TrainResult(model_path=model_path, metadata_path=metadata_path, accuracy=accuracy,
                       n_train=len(y_train), n_test=len(y_test), seed=seed,
                       xgboost_version=xgb.__version__, sha256=sha)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the model into")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", default="model.json",
                        help="model file: model.json (default), model (no extension, JSON inside), model.ubj")
    args = parser.parse_args(argv)
    result = train(out=args.out, seed=args.seed, name=args.name)
    print(f"held-out accuracy: {result.accuracy:.4f} ({result.n_test} test rows)")
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
