"""Every corpus case (tests/corpus) through ``diagnose()``: exactly its expected findings.

Each case is diagnosed alone (its objects plus KServe's ClusterServingRuntimes and the shared
base), with no desired state and no probe observations — what configuration and status alone
say, as ``check`` sees a cluster it has never touched. Also: the whole corpus at once gives the
same per-InferenceService answer (no case leaks into another), every new code is produced by
some case, and no symptom is listed under two findings.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from daemon.core.diagnosis import diagnose
from daemon.core.findings import Code, Finding, Severity
from daemon.core.settings import SecretAccessSettings, Settings
from daemon.core.world import World
from tests.corpus import Case, load, shared_objects

CASES = load()
SETTINGS = Settings(secrets=SecretAccessSettings(namespaces=("*",)))
NOW = 1_764_441_000.0


def _diagnose(objects: list[dict[str, object]], settings: Settings = SETTINGS) -> list[Finding]:
    return diagnose(world=World.build(objects), desired=[], drifts=[], observations=[], settings=settings,
                    now=NOW)


def _by_isvc(findings: list[Finding]) -> dict[str | None, list[tuple[str, str]]]:
    out: dict[str | None, list[tuple[str, str]]] = defaultdict(list)
    for f in findings:
        out[f.inferenceservice].append((f.code.value, f.severity.value))
    return {k: sorted(v) for k, v in out.items()}


def test_the_corpus_is_big_enough_and_covers_every_format_and_scheme() -> None:
    assert len(CASES) >= 25
    text = "\n".join(str(o) for c in CASES for o in c.objects)
    for needle in ("sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "onnx", "triton", "huggingface",
                   "pmml", "paddle", "containers", "transformer", "explainer", "RawDeployment", "ModelMesh",
                   "s3://", "gs://", "https://", "pvc://", "hf://", "istio.io/rev", "PeerAuthentication"):
        assert needle in text, needle


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_gets_exactly_its_expected_findings(case: Case) -> None:
    findings = _diagnose([*shared_objects(), *case.objects])
    got = _by_isvc(findings)
    assert set(got) <= {case.key}, f"findings about something else: {got}"
    assert tuple(got.get(case.key, [])) == case.expect, [
        (f.code.value, f.severity.value, f.evidence) for f in findings
    ]
    for f in findings:
        assert f.evidence and f.remedy and f.explanation


def test_the_whole_corpus_at_once_gives_the_same_answers() -> None:
    everything = [*shared_objects(), *(o for c in CASES for o in c.objects)]
    got = _by_isvc(_diagnose(everything))
    assert set(got) <= {c.key for c in CASES}
    for c in CASES:
        assert tuple(got.get(c.key, [])) == c.expect, c.name


def test_every_new_code_is_produced_by_some_case() -> None:
    produced = {code for c in CASES for code, _ in c.expect}
    for code in (Code.NOT_CHECKED, Code.RUNTIME_DISABLED, Code.RUNTIME_VERSION_UNSUPPORTED,
                 Code.PVC_NOT_BOUND, Code.PEER_AUTHENTICATION_STRICT_NO_SIDECAR,
                 Code.MESH_POLICY_NOT_EVALUATED, Code.ISTIO_REVISION_MISSING, Code.COMPONENT_NOT_READY):
        assert code.value in produced, code


def test_no_healthy_case_is_warned_about() -> None:
    """Healthy (no warning or critical expected) means diagnose says nothing above info."""
    for c in CASES:
        if all(sev == "info" for _, sev in c.expect):
            findings = _diagnose([*shared_objects(), *c.objects])
            assert all(f.severity is Severity.INFO for f in findings), c.name


def test_no_symptom_is_listed_under_two_findings() -> None:
    everything = [*shared_objects(), *(o for c in CASES for o in c.objects)]
    seen: dict[str, str] = {}
    for f in _diagnose(everything):
        for s in f.caused:
            assert s not in seen, f"{s!r} under {seen[s]} and {f.code.value}"
            seen[s] = f.code.value


def test_secrets_the_daemon_may_not_read_are_not_checked_never_missing() -> None:
    case = next(c for c in CASES if c.name == "c19-s3-wrong-keys")
    objs = [o for o in [*shared_objects(), *case.objects] if o.get("kind") != "Secret"]
    findings = _diagnose(objs, Settings())
    assert [(f.code.value, f.severity.value) for f in findings] == [("not-checked", "info")]
    assert "no access to secrets in c19-s3-wrong-keys" in findings[0].evidence[0]
