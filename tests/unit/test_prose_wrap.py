"""``check``'s text wrapping: prose wraps at spaces, commands and names never break (pure)."""

from __future__ import annotations

import pytest

from daemon.process.prose import command_spans, wrap

APPLY = "kubectl apply --server-side --field-manager=kserve-warden -f config/desired/"
PATCH = ("kubectl patch serviceaccount iris-sa -n user-example-com -p "
         "'{\"imagePullSecrets\": [{\"name\": \"harbor-credentials\"}]}'")


@pytest.mark.parametrize(("text", "commands"), [
    (f"apply the runtime: {APPLY} (done automatically)", [APPLY]),
    (f"add the secret ({PATCH}); then delete the pod", [PATCH]),
    ("restart it: kubectl rollout restart deployment coredns -n kube-system", [
        "kubectl rollout restart deployment coredns -n kube-system"]),
    ("check by hand: kubectl get authorizationpolicy -n kubeflow -o yaml, then fix it", [
        "kubectl get authorizationpolicy -n kubeflow -o yaml"]),
    ("see kubectl logs -l app=x,component=predictor --tail=50 and the events.", [
        "kubectl logs -l app=x,component=predictor --tail=50"]),
    ("e.g. python -m serving.train --out DIR and upload DIR/*", ["python -m serving.train --out DIR"]),
    ("label it (kubectl label namespace ns istio.io/rev=<rev> --overwrite) or install it", [
        "kubectl label namespace ns istio.io/rev=<rev> --overwrite"]),
    ("kubectl get pods -l 'team in (a,b)'; done", ["kubectl get pods -l 'team in (a,b)'"]),
    ("kubectl get svc istiod.", ["kubectl get svc istiod"]),
    ("the kubectl-annotate manager and mykubectl tool", []),
    ("no command here, only iris-fastapi-runtime and --server-side", []),
])
def test_command_spans(text: str, commands: list[str]) -> None:
    assert [text[a:b] for a, b in command_spans(text)] == commands


@pytest.mark.parametrize("width", [40, 60, 80, 100])
@pytest.mark.parametrize("text", [
    f"apply the desired ServingRuntime iris-fastapi-runtime (lists xgboost): {APPLY} (done automatically)",
    f"the registry secret harbor-credentials exists but iris-sa does not list it ({PATCH}); then delete "
    "the pod iris-model-predictor-00001-deployment-6579ddcfbd-b7b7r so it is pulled again",
    "static check: cluster.local/ns/user-example-com/sa/iris-sa → store minio-service.kubeflow:9000: "
    "ALLOW policies apply to the workload (kubeflow/seaweedfs-service) and none admits it",
])
def test_wrapping_keeps_every_command_and_name_whole(text: str, width: int) -> None:
    lines = wrap(text, width=width, indent="    ")
    # Nothing lost or added: the words, in order, are the text's.
    assert " ".join(ln.strip() for ln in lines).split() == text.split()
    words = set(text.split())
    for ln in lines:
        for w in ln.split():
            assert w in words, (w, ln)  # no word was cut (at a hyphen or anywhere)
        # prose wraps within the width; only a line holding one unbreakable unit overflows it
        if len(ln) > width:
            assert any(text[a:b] in ln for a, b in command_spans(text)) or len(ln.split()) == 1, ln
    for a, b in command_spans(text):
        assert any(text[a:b] in ln for ln in lines), text[a:b]


def test_indents_and_blank_text() -> None:
    assert wrap("", width=60) == []
    lines = wrap("one two three four five six seven eight nine ten", width=20, indent="  - ",
                 subsequent_indent="    ")
    assert lines[0].startswith("  - one") and all(ln.startswith("    ") for ln in lines[1:])
    assert all(len(ln) <= 20 for ln in lines)
