"""Probes: small async callables that look at one thing and report an :class:`Observation`.

Each probe is built with its clients and settings (``__init__``) and called with no
arguments; it returns a frozen :class:`Observation` and never raises: a crash inside a
probe becomes an observation with outcome ``probe-error``. Probes never import ``daemon``
or ``sandbox``; the daemon decides what an observation means.
"""

from probes.observation import Observation, Probe, probe_error

__all__ = ["Observation", "Probe", "probe_error"]
