"""The Observation record: frozen, JSON-able, and probe_error keeps only type and message."""

from __future__ import annotations

import dataclasses
import json

import pytest

from probes.observation import PROBE_ERROR, Observation, probe_error


def test_observation_is_frozen_and_json_able() -> None:
    obs = Observation(probe="dns", target="istiod.istio-system.svc", started=1.0, finished=1.25,
                      ok=True, outcome="ok", values={"p50_seconds": 0.001}, evidence=["3/3 answered"],
                      details={"answers": ["10.0.0.1"]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.ok = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        obs.values["p50_seconds"] = 2.0  # type: ignore[index]
    d = obs.to_dict()
    assert json.loads(json.dumps(d))["duration_seconds"] == 0.25
    assert d["evidence"] == ["3/3 answered"]


def test_probe_error_keeps_type_and_message() -> None:
    obs = probe_error(probe="storage", target="t", started=0.0, exc=ValueError("boom"))
    assert obs.outcome == PROBE_ERROR
    assert not obs.ok
    assert obs.evidence == ("probe crashed: ValueError: boom",)
    assert obs.details["exception"] == "ValueError"
