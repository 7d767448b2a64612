"""Request counters by (verb, resource), so benchmarks can prove "no polling lists"."""

from __future__ import annotations

from collections import Counter


class RequestStats:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def record(self, verb: str, resource: str) -> None:
        self.counts[(verb, resource)] += 1

    def count(self, verb: str, resource: str | None = None) -> int:
        """Requests of ``verb`` (on ``resource``, a plural or ``plural/sub``; all resources if None)."""
        if resource is None:
            return sum(n for (v, _), n in self.counts.items() if v == verb)
        return self.counts[(verb, resource)]

    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        """``{"list inferenceservices": 3, ...}``: a copy, safe to diff against a later one."""
        return {f"{v} {r}": n for (v, r), n in sorted(self.counts.items())}

    def reset(self) -> None:
        self.counts.clear()
