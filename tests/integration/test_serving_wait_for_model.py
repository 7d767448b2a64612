"""``--wait-for-model`` reads a refused file once until it changes, then loads the good one.

Issue 23 item 8: next to a 600 MB file that never loads, the watcher re-read it every second
(57 % of a core, RSS swinging by 0.8 GB, ``/v2/health/live`` up to 1.27 s). Now a refused file
is read again only after it changed and then stayed the same for one poll (a copy in progress
is read when complete, not at every poll). Reads are counted
through the reader the loader takes (``load_model(read=...)``), on real files in a temp dir;
each poll is awaited directly, so nothing here waits on a timer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from serving.metrics import ServingMetrics
from serving.state import ModelSlot, ModelWatcher
from serving.train import TrainResult, train

SETOSA = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


class CountingReader:
    """Reads a file as the loader would, and notes which file it read."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def __call__(self, path: Path) -> bytes:
        self.reads.append(path.name)
        return path.read_bytes()


async def _polls(watcher: ModelWatcher, n: int) -> None:
    for _ in range(n):
        assert not await watcher.poll()


async def test_a_refused_file_is_read_once_until_it_changes(trained: TrainResult, tmp_path: Path) -> None:
    good = trained.model_path.read_bytes()
    models = tmp_path / "models"
    models.mkdir()
    model = models / "model"
    model.write_bytes(good[:len(good) // 2])  # a copy still in progress: refused
    slot = ModelSlot(name="iris", model_dir=models, metrics=ServingMetrics(CollectorRegistry()))
    reader = CountingReader()
    watcher = ModelWatcher(slot, read=reader)

    await _polls(watcher, 5)
    assert reader.reads == ["model"]  # once, not once per poll

    model.write_bytes(good[:3 * len(good) // 4])  # the copy goes on: another size
    await _polls(watcher, 1)
    assert reader.reads == ["model"]  # changed since the last poll: still being written, not read
    await _polls(watcher, 3)
    assert reader.reads == ["model"] * 2  # unchanged for a poll: read, refused, not read again

    st = model.stat()
    model.write_bytes(good[:st.st_size - 1] + b"x")  # same size, new content: a new mtime
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    await _polls(watcher, 3)
    assert reader.reads == ["model"] * 3

    st = model.stat()
    swap = models / ".model.part"
    swap.write_bytes(good[:st.st_size - 1] + b"y")  # same size and mtime, renamed over: a new inode
    os.utime(swap, ns=(st.st_atime_ns, st.st_mtime_ns))
    swap.replace(model)
    await _polls(watcher, 3)
    assert reader.reads == ["model"] * 4

    (models / "notes.txt").write_text("not a model")  # a new file is read once too
    await _polls(watcher, 3)
    assert reader.reads == ["model"] * 4 + ["notes.txt"]

    model.write_bytes(good)  # the copy is complete: loaded once it stays so for a poll
    assert not await watcher.poll()
    assert await watcher.poll()
    assert reader.reads == ["model"] * 4 + ["notes.txt", "model"] and slot.loaded is not None
    assert slot.loaded.path == model and slot.loaded.sha256 == trained.sha256
    assert slot.loaded.predictor.run(SETOSA, want_proba=False).predict.tolist() == [0]


async def test_a_deleted_file_is_forgotten_and_read_again_when_it_returns(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "model").write_bytes(b'{"learner": [')
    slot = ModelSlot(name="iris", model_dir=models, metrics=ServingMetrics(CollectorRegistry()))
    reader = CountingReader()
    watcher = ModelWatcher(slot, read=reader)
    await _polls(watcher, 2)
    (models / "model").unlink()
    await _polls(watcher, 1)  # an empty directory: nothing read, the refusal forgotten
    (models / "model").write_bytes(b'{"learner": [')  # back under the same name: read again, once
    await _polls(watcher, 2)
    assert reader.reads == ["model", "model"]
