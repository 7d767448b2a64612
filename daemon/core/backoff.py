"""When to try again: the one function that decides every retry delay in the daemon.

A reconcile that failed, a watch that dropped, a list answered 429: they all ask
:func:`retry_delay`, so the policy lives in one table-tested place instead of a sleep here and
there. The rules, after client-go's workqueue rate limiter and the API server's own advice:

* **429 Too Many Requests** → exactly the server's ``Retry-After`` (never sooner; a little
  jitter on top so that many clients told "1 s" do not return in lock-step);
* **5xx / dropped connection / timeout** (transient) → exponential back-off from ``base``,
  doubling per consecutive failure, capped at ``cap``, with "full jitter" (uniform in
  [d/2, d]) so replicas and watches spread out;
* **410 Gone** → relist at once (0 s): the watch window moved, nothing is wrong;
* **409 Conflict** on an optimistic write → a short fixed delay: re-read and retry;
* anything else (403, 422, a bug) → the cap: it will not fix itself soon, but the next
  resync or watch event may change the picture;
* success with a ``retry_at`` hint (a cooldown ending, a verification due) → until then.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from daemon.core.errors import ConflictError, GoneError, KubeError, TooManyRequestsError

BASE_SECONDS = 0.05
CAP_SECONDS = 30.0
CONFLICT_SECONDS = 0.1


@dataclass(frozen=True, kw_only=True)
class Result:
    """What one reconcile asks of the queue: nothing, or to come back after a delay."""

    requeue_after: float | None = None
    error: BaseException | None = None

    @property
    def requeue(self) -> bool:
        return self.requeue_after is not None


def retry_delay(*, error: BaseException | None, failures: int, retry_at: float | None = None,
                now: float = 0.0, base: float = BASE_SECONDS, cap: float = CAP_SECONDS,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before the next attempt, or None for "no retry needed".

    ``failures`` counts consecutive failures *including* this one (1 on the first).
    """
    r = rng or random
    if error is None:
        if retry_at is None:
            return None
        return max(0.0, retry_at - now)
    if isinstance(error, TooManyRequestsError):
        return error.retry_after + r.uniform(0.0, min(1.0, error.retry_after * 0.1 + base))
    if isinstance(error, GoneError):
        return 0.0
    if isinstance(error, ConflictError) and not error.is_apply_conflict:
        return CONFLICT_SECONDS
    if isinstance(error, KubeError) and not error.transient:
        return cap
    exp = min(cap, base * (2 ** max(0, failures - 1)))
    return r.uniform(exp / 2, exp)


def result_for(*, error: BaseException | None, failures: int, retry_at: float | None = None,
               now: float = 0.0, rng: random.Random | None = None) -> Result:
    """The :class:`Result` of a reconcile: :func:`retry_delay` wrapped for the work queue."""
    return Result(requeue_after=retry_delay(error=error, failures=failures, retry_at=retry_at, now=now,
                                            rng=rng), error=error)
