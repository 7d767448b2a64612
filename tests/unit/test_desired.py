"""Desired state: loading, rejection of credentials and typos, and rendering for a World."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.core.desired import (
    DERIVED_FROM_ANNOTATION,
    DesiredError,
    KServeStorageConfig,
    copy_manifest,
    index_by_ref,
    parse_desired,
)
from daemon.core.objects import ObjectRef
from daemon.core.world import World, secret_value_hash
from daemon.process.config_files import load_desired
from tests.conftest import SEED_DESIRED
from tests.unit import factories as fx

ROOT = Path(__file__).resolve().parents[2]
AP_PRINCIPAL = "cluster.local/ns/user-example-com/sa/iris-sa"


def kinds(objs: list[dict[str, object]]) -> list[str]:
    return sorted(str(o["kind"]) for o in objs)


def test_embedded_default_is_empty_and_demo_and_example_load_identically() -> None:
    """No settings, no desired state: nothing is ever applied by default. The demo's seed
    manifests (sandbox/demo/desired) and the configured example (config/desired) are one set."""
    none = load_desired(None)
    assert none.manifests == () and none.derived == ()
    embedded = load_desired(SEED_DESIRED)
    shipped = load_desired(ROOT / "config" / "desired")
    assert embedded.manifests == shipped.manifests and embedded.derived == shipped.derived
    assert sorted(str(r) for r in embedded.refs()) == [
        "AuthorizationPolicy/kubeflow/minio-user-namespace-access",
        "InferenceService/user-example-com/iris-model",
        "Secret/user-example-com/minio-s3-secret",
        "ServiceAccount/user-example-com/iris-sa",
        "ServingRuntime/user-example-com/iris-fastapi-runtime",
    ]


def test_the_desired_content_is_the_seed_corrected() -> None:
    by_kind = {str(m["kind"]): m for m in load_desired(SEED_DESIRED).manifests}
    sa = by_kind["ServiceAccount"]
    assert list(sa["imagePullSecrets"]) == [{"name": "harbor-credentials"}]
    assert list(sa["secrets"]) == [{"name": "minio-s3-secret"}]
    sr = by_kind["ServingRuntime"]["spec"]
    assert {f["name"] for f in sr["supportedModelFormats"]} >= {"sklearn", "xgboost"}
    assert list(sr["protocolVersions"]) == ["v1", "v2"]
    isvc = by_kind["InferenceService"]
    assert "sidecar.istio.io/inject" not in isvc["metadata"]["annotations"]
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "iris-sa"
    ap = by_kind["AuthorizationPolicy"]["spec"]
    # Principal only: no rule admits the whole namespace (the seed's over-broad second rule).
    assert copy_manifest(ap)["rules"] == [
        {"from": [{"source": {"principals": [AP_PRINCIPAL]}}]}
    ]
    (derived,) = load_desired(SEED_DESIRED).derived
    assert (derived.source_namespace, derived.source_name) == ("kubeflow", "mlpipeline-minio-artifact")
    assert dict(derived.keys) == {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
    assert derived.annotations["serving.kserve.io/s3-endpoint"] == "minio-service.kubeflow:9000"


def test_derived_secret_is_rendered_with_hashes_from_the_world() -> None:
    world = fx.healthy().world()
    rendered = {str(o["kind"]): o for o in load_desired(SEED_DESIRED).manifests_for(world)}
    sec = rendered["Secret"]
    assert sec["data"] == {
        "AWS_ACCESS_KEY_ID": secret_value_hash(fx.b64(fx.ACCESS_KEY)),
        "AWS_SECRET_ACCESS_KEY": secret_value_hash(fx.b64(fx.SECRET_KEY)),
    }
    assert sec["metadata"]["annotations"][DERIVED_FROM_ANNOTATION] == "kubeflow/mlpipeline-minio-artifact"
    assert fx.ACCESS_KEY not in json.dumps(rendered) and fx.SECRET_KEY not in json.dumps(rendered)


def test_derived_secret_with_its_source_missing_renders_without_data() -> None:
    c = fx.healthy()
    c.drop("Secret", "kubeflow", "mlpipeline-minio-artifact")
    state = load_desired(SEED_DESIRED)
    (derived,) = state.derived
    assert derived.missing_keys(None) == ["accesskey", "secretkey"]
    sec = next(o for o in state.manifests_for(c.world()) if o["kind"] == "Secret")
    assert sec["data"] == {}
    assert state.derived_secret(derived.ref) is derived


@pytest.mark.parametrize(
    ("credentials", "key"),
    [
        (
            {"storageSecretNameAnnotation": "serving.kserve.io/storageSecretName"},
            "serving.kserve.io/storageSecretName",
        ),
        ({"storageSecretNameAnnotation": "serving.kserve.io/secretName"}, "serving.kserve.io/secretName"),
        ({}, "serving.kserve.io/storageSecretName"),
        (None, "serving.kserve.io/storageSecretName"),
    ],
)
def test_storage_secret_annotation_key_follows_the_live_configmap(
    credentials: dict[str, str] | None, key: str
) -> None:
    c = fx.healthy()
    if credentials is None:
        c.drop("ConfigMap", "kserve", "inferenceservice-config")
    else:
        c.get("ConfigMap", "kserve", "inferenceservice-config")["data"]["credentials"] = json.dumps(
            credentials
        )
    isvc = next(o for o in load_desired(SEED_DESIRED).manifests_for(c.world())
                if o["kind"] == "InferenceService")
    assert isvc["metadata"]["annotations"] == {key: "minio-s3-secret"}


def test_kserve_config_with_bad_json_falls_back_to_defaults() -> None:
    cfg = KServeStorageConfig.from_configmap({"metadata": {"name": "x"}, "data": {"credentials": "{nope"}})
    assert cfg.secret_annotation == "serving.kserve.io/storageSecretName"


def test_manifests_for_does_not_mutate_the_declaration() -> None:
    state = load_desired(SEED_DESIRED)
    before = json.dumps(
        [dict(m) for m in state.manifests], default=lambda o: dict(o) if hasattr(o, "items") else list(o)
    )
    out = state.manifests_for(fx.healthy().world())
    out[0]["metadata"]["name"] = "changed"
    after = json.dumps(
        [dict(m) for m in state.manifests], default=lambda o: dict(o) if hasattr(o, "items") else list(o)
    )
    assert before == after
    assert ObjectRef(
        api_version="v1", kind="ServiceAccount", namespace="user-example-com", name="iris-sa"
    ) in index_by_ref(state.manifests_for(fx.healthy().world()))


SA = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: n}\n"
BAD = [
    ("malformed yaml", "kind: [oops\n", "not valid YAML: expected ',' or ']'"),
    ("not a mapping", "- a\n", "x.yaml#0: a manifest must be a mapping, got list"),
    ("no kind", "apiVersion: v1\nmetadata: {name: a}\n", "x.yaml#0: apiVersion and kind are required"),
    (
        "unknown kind",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: n}\n",
        "x.yaml#0: unknown kind Deployment (apps/v1)",
    ),
    (
        "missing name",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {namespace: n}\n",
        "x.yaml#0: ServiceAccount without metadata.name",
    ),
    (
        "missing namespace",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n",
        "x.yaml#0: ServiceAccount a without metadata.namespace",
    ),
    (
        "secret with values",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n"
        "stringData: {AWS_SECRET_ACCESS_KEY: hunter2}\n",
        "carries credential values (data/stringData)",
    ),
    (
        "env with a literal credential",
        "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\n"
        "metadata: {name: r, namespace: n}\nspec:\n  containers:\n  - name: c\n    env:\n"
        "    - {name: AWS_SECRET_ACCESS_KEY, value: hunter2}\n",
        "env[AWS_SECRET_ACCESS_KEY] has a literal value",
    ),
    ("duplicate", SA + "---\n" + SA, "x.yaml#1: ServiceAccount n/a declared twice (first at x.yaml#0)"),
    (
        "derived without source",
        "apiVersion: warden.kserve.io/v1alpha1\nkind: DerivedSecret\n"
        "metadata: {name: s, namespace: n}\nspec: {keys: {a: B}}\n",
        "spec.source.name is required",
    ),
    (
        "derived with unknown key",
        "apiVersion: warden.kserve.io/v1alpha1\nkind: DerivedSecret\n"
        "metadata: {name: s, namespace: n}\nspec: {source: {name: x}, keys: {a: B}, data: {B: v}}\n",
        "spec.data: unknown key",
    ),
    (
        "derived annotation not a string",
        "apiVersion: warden.kserve.io/v1alpha1\nkind: DerivedSecret\n"
        "metadata: {name: s, namespace: n}\nspec: {source: {name: x}, keys: {a: B}, annotations: {x: 0}}\n",
        "spec.annotations must be a mapping of strings",
    ),
]


@pytest.mark.parametrize(("name", "text", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_desired_state_is_rejected_with_file_and_document(name: str, text: str, needle: str) -> None:
    with pytest.raises(DesiredError) as exc:
        parse_desired([("x.yaml", text)])
    assert any(needle in p for p in exc.value.problems), exc.value.problems


def test_every_problem_is_listed_and_no_value_is_echoed() -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\ndata: {k: aHVudGVyMg==}\n---\n"
        "apiVersion: v1\nkind: Bogus\nmetadata: {name: b, namespace: n}\n"
    )
    with pytest.raises(DesiredError) as exc:
        parse_desired([("x.yaml", text)])
    assert len(exc.value.problems) == 2
    assert "aHVudGVyMg" not in str(exc.value)


def test_a_secret_without_values_and_empty_documents_are_fine(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n---\n"
    )
    (tmp_path / "ignored.txt").write_text("not yaml at all: [")
    state = load_desired(tmp_path)
    assert [str(r) for r in state.refs()] == ["Secret/n/s"]
    assert state.sources[state.refs()[0]].endswith("a.yaml#0")


def test_missing_directory() -> None:
    with pytest.raises(DesiredError) as exc:
        load_desired(Path("/nonexistent/desired"))
    assert "cannot read" in exc.value.problems[0]


def test_world_rendering_is_pure() -> None:
    state = load_desired(SEED_DESIRED)
    w = World.build([])
    assert kinds(state.manifests_for(w)) == kinds(state.manifests_for(w))
