"""A scope (``check -n``/``-l``) narrows the desired state by kubectl's rule, and discovery with it.

Table-driven and pure: the seed's desired state (config/desired) narrowed by namespaces and
selectors, judged by each object's own labels; ``discover`` lists no desired model and no
``models:`` override outside the scope.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from daemon.core.desired import DesiredState, parse_desired
from daemon.core.discovery import discover
from daemon.core.scope import in_scope, narrow_desired, unseen_desired
from daemon.core.settings import ScopeSettings
from daemon.core.world import World
from tests.unit import factories as fx

SEED = ["ServiceAccount/user-example-com/iris-sa", "ServingRuntime/user-example-com/iris-fastapi-runtime",
        "InferenceService/user-example-com/iris-model",
        "AuthorizationPolicy/kubeflow/minio-user-namespace-access", "Secret/user-example-com/minio-s3-secret"]


def refs(d: DesiredState) -> list[str]:
    return sorted(f"{r.kind}/{r.namespace}/{r.name}" for r in d.refs())


def labelled(seed: DesiredState) -> DesiredState:
    """The seed with ``app: iris`` on the InferenceService and (via spec.labels) the derived Secret."""
    text = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris-model, namespace: user-example-com, labels: {app: iris, tier: prod}}
spec: {predictor: {model: {modelFormat: {name: xgboost}, storageUri: "s3://b/m"}}}
---
apiVersion: warden.kserve.io/v1alpha1
kind: DerivedSecret
metadata: {name: minio-s3-secret, namespace: user-example-com}
spec:
  source: {namespace: kubeflow, name: mlpipeline-minio-artifact}
  keys: {accesskey: AWS_ACCESS_KEY_ID, secretkey: AWS_SECRET_ACCESS_KEY}
  labels: {app: iris}
"""
    extra = parse_desired([("extra.yaml", text)])
    keep = [m for m in seed.manifests if m.get("kind") != "InferenceService"]
    return DesiredState(manifests=(*keep, *extra.manifests), derived=extra.derived,
                        sources={**seed.sources, **extra.sources})


@pytest.mark.parametrize(("namespaces", "selector", "expected"), [
    ((), None, SEED),
    (("user-example-com",), None, [r for r in SEED if "/kubeflow/" not in r]),
    (("kubeflow",), None, ["AuthorizationPolicy/kubeflow/minio-user-namespace-access"]),
    (("nosuch",), None, []),
    # none of the seed's objects carries app=iris: a selector on it leaves nothing to diff
    ((), "app=iris", []),
    ((), "app!=iris", SEED),  # != matches objects without the label
    ((), "!app", SEED),
    # the derived Secret is judged by the Secret it renders (managed-by label)
    ((), "app.kubernetes.io/managed-by=kserve-warden", ["Secret/user-example-com/minio-s3-secret"]),
])
def test_the_seed_desired_state_narrowed(namespaces: tuple[str, ...], selector: str | None,
                                         expected: list[str]) -> None:
    narrowed = narrow_desired(fx.desired_state(), namespaces=namespaces, selector=selector)
    assert refs(narrowed) == sorted(expected)
    assert set(narrowed.sources) == set(narrowed.refs())


@pytest.mark.parametrize(("namespaces", "selector", "expected"), [
    ((), "app=iris", ["InferenceService/user-example-com/iris-model",
                      "Secret/user-example-com/minio-s3-secret"]),
    ((), "app=iris,tier=prod", ["InferenceService/user-example-com/iris-model"]),
    (("kubeflow",), "app=iris", []),
    (("user-example-com", "kubeflow"), "app in (iris)", [
        "InferenceService/user-example-com/iris-model", "Secret/user-example-com/minio-s3-secret"]),
])
def test_a_selector_applies_to_each_objects_own_labels(namespaces: tuple[str, ...], selector: str,
                                                       expected: list[str]) -> None:
    narrowed = narrow_desired(labelled(fx.desired_state()), namespaces=namespaces, selector=selector)
    assert refs(narrowed) == sorted(expected)


@pytest.mark.parametrize(("obj", "namespaces", "selector", "expected"), [
    ({"metadata": {"name": "a", "namespace": "x"}}, ("x",), None, True),
    ({"metadata": {"name": "a", "namespace": "x"}}, ("y",), None, False),
    ({"metadata": {"name": "a", "namespace": "x", "labels": {"k": "v"}}}, ("x",), "k=v", True),
    ({"metadata": {"name": "a", "namespace": "x", "labels": {"k": "v"}}}, ("y",), "k=v", False),
    ({"metadata": {"name": "a", "namespace": "x"}}, (), "k", False),
    ({"metadata": {"name": "a", "namespace": "x"}}, (), "", True),
])
def test_in_scope(obj: dict[str, Any], namespaces: tuple[str, ...], selector: str | None,
                  expected: bool) -> None:
    assert in_scope(obj, namespaces=namespaces, selector=selector) is expected


def live_isvc(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "iris"}}, "spec": {}}


@pytest.mark.parametrize(("scope", "live", "expected"), [
    # the seed's settings: the desired model and the iris-model override
    (ScopeSettings(), [], ["user-example-com/iris-model"]),
    # -n nosuch: neither the desired model nor the override is listed
    (ScopeSettings(namespaces=("nosuch",)), [], []),
    (ScopeSettings(namespaces=("team-a",)), [("team-a", "m")], ["team-a/m"]),
    # -l app=iris: the desired model (no such label) and the override of an object the API
    # server did not return are out; a live object that matched is in
    (ScopeSettings(selector="app=iris"), [], []),
    (ScopeSettings(selector="app=iris"), [("team-a", "m")], ["team-a/m"]),
    (ScopeSettings(selector="app=iris"), [("user-example-com", "iris-model")],
     ["user-example-com/iris-model"]),
])
def test_discover_lists_only_models_in_scope(scope: ScopeSettings, live: list[tuple[str, str]],
                                             expected: list[str]) -> None:
    settings = replace(fx.settings(), scope=scope)
    assert [m.key for m in fx.settings().models] == ["user-example-com/iris-model"]
    world = World.build([live_isvc(ns, name) for ns, name in live])
    desired = fx.desired_state().manifests_for(world)
    found = discover(world=world, desired=desired, settings=settings)
    assert [m.key for m in found.models] == expected
    if "user-example-com/iris-model" in expected:  # the override still applies to what is listed
        (iris,) = [m for m in found.models if m.key == "user-example-com/iris-model"]
        assert iris.canary is not None


@pytest.mark.parametrize(("selector", "unseen"), [
    (None, []),
    ("", []),
    ("app=iris", ["user-example-com/iris-model"]),  # the seed's InferenceService has no labels
    ("!app", []),
])
def test_run_refuses_a_desired_model_its_own_selector_hides(selector: str | None, unseen: list[str]) -> None:
    problems = unseen_desired(fx.desired_state(), selector=selector)
    assert [p.split()[2] for p in problems] == unseen
    for p in problems:
        assert "scope.selector" in p and "widen the selector" in p


def test_a_labelled_desired_model_is_seen() -> None:
    assert unseen_desired(labelled(fx.desired_state()), selector="app=iris") == []
