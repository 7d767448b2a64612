"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``, ``4``): parsed exactly, printed back.

The scheduling and resource diagnoses compare a pod's requests with a Node's allocatable and name
the memory limit an OOM-killed container hit; both need the quantities apimachinery's
``resource.Quantity`` accepts. Parsed into :class:`fractions.Fraction` (no float rounding: ``0.1``
CPU is exactly ``100m``, as the API server sees it). A string the API server would refuse is
``None`` here: the caller says "not checked" rather than guessing a number.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$"
)


def parse_quantity(text: object) -> Fraction | None:
    """The quantity's value in base units (bytes, cores, devices); None when it is not one."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return Fraction(text)
    return _parse(str(text).strip())


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Fraction | None:
    # Cached: a cluster's pods repeat a handful of quantities ("100m", "2Gi") thousands of times,
    # and the scheduling rule sums every bound pod's requests once per pass.
    m = _QUANTITY.match(text)
    if m is None:
        return None
    num, suffix = Fraction(m["num"]), m["suffix"]
    if suffix in _BINARY:
        return num * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return num * Fraction(10) ** int(suffix[1:])
    return num * _DECIMAL[suffix]


def format_quantity(value: Fraction, *, resource: str) -> str:
    """``value`` as a person would write it for ``resource``: memory and storage in the largest
    binary unit that keeps it whole (``4Gi``, ``1536Mi``), CPU in cores or millicores, others whole."""
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        for suffix, size in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
            if value >= size and value % size == 0:
                return f"{value // size}{suffix}"
        return str(int(value)) if value.denominator == 1 else str(float(value))
    if value.denominator == 1:
        return str(value.numerator)
    milli = value * 1000
    if resource == "cpu" and milli.denominator == 1:
        return f"{milli.numerator}m"
    return str(float(value))


def doubled_memory(limit: Fraction) -> str:
    """Twice ``limit``, rounded up to a whole Mi (what the OOM remedy proposes)."""
    mib = -(-limit * 2 // 2**20)
    return format_quantity(Fraction(int(mib) * 2**20), resource="memory")
