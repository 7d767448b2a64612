"""Micro-batching: callers share model calls and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.batcher import MicroBatcher
from serving.predictor import Outputs


class RecordingModel:
    """predict = first feature as int; proba = the row itself. Records each call's row count."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray, *, want_proba: bool) -> Outputs:
        self.calls.append(x.shape[0])
        if self.fail_on is not None and (x[:, 0] == self.fail_on).any():
            raise ValueError("poisoned row")
        return Outputs(predict=x[:, 0].astype(np.int64), predict_proba=x.copy() if want_proba else None)


def rows(start: int, n: int) -> np.ndarray:
    return np.array([[start + i, 0.5, 0.25, 0.125] for i in range(n)], dtype=np.float32)


async def test_concurrent_callers_share_one_call_and_get_their_own_rows() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model)
    sizes = [1, 3, 1, 2, 5, 1, 1, 4] * 4
    starts = np.cumsum([0, *sizes[:-1]]) * 10
    outs = await asyncio.gather(*(batcher.submit(rows(int(s), n), want_proba=(i % 2 == 0))
                                  for i, (s, n) in enumerate(zip(starts, sizes, strict=True))))
    assert model.calls == [sum(sizes)]  # one model call for all 32 callers
    for i, (s, n, out) in enumerate(zip(starts, sizes, outs, strict=True)):
        assert out.predict.tolist() == list(range(int(s), int(s) + n))
        if i % 2 == 0:
            assert out.predict_proba is not None
            assert np.array_equal(out.predict_proba, rows(int(s), n))
        else:
            assert out.predict_proba is None


async def test_sequential_callers_are_not_delayed_into_batches() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model)
    for i in range(5):
        out = await batcher.submit(rows(i, 1))
        assert out.predict.tolist() == [i]
    assert model.calls == [1, 1, 1, 1, 1]


async def test_max_rows_splits_batches() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model, max_rows=10)
    outs = await asyncio.gather(*(batcher.submit(rows(100 * i, 4)) for i in range(6)))
    assert model.calls == [8, 8, 8]
    assert [o.predict[0] for o in outs] == [0, 100, 200, 300, 400, 500]


async def test_large_request_runs_off_loop_alone() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model, offload_rows=50)
    big, small = await asyncio.gather(batcher.submit(rows(0, 60)), batcher.submit(rows(1000, 1)))
    assert sorted(model.calls) == [1, 60]
    assert big.predict.tolist() == list(range(60)) and small.predict.tolist() == [1000]


async def test_failing_request_does_not_fail_its_batch_mates() -> None:
    model = RecordingModel(fail_on=7.0)
    batcher = MicroBatcher(model)
    results = await asyncio.gather(batcher.submit(rows(1, 1)), batcher.submit(rows(7, 1)),
                                   batcher.submit(rows(9, 1)), return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert [r.predict.tolist() for r in (results[0], results[2]) if isinstance(r, Outputs)] == [[1], [9]]


async def test_cancelled_caller_is_skipped() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model)
    gone = asyncio.ensure_future(batcher.submit(rows(5, 1)))
    await asyncio.sleep(0)  # queued
    gone.cancel()
    kept = await batcher.submit(rows(6, 1))
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert kept.predict.tolist() == [6]
    assert model.calls == [1]
