"""diff(): only the fields desired sets; keyed lists by name; secrets by hash, never shown."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.diff import ABSENT, HASH_DIFFERS, diff
from daemon.core.world import hash_secret
from tests.conftest import b64


def obj(kind: str = "ServiceAccount", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": "a", "namespace": "n"}, **extra}


def with_meta(o: dict[str, Any], **meta: Any) -> dict[str, Any]:
    o["metadata"].update(meta)
    return o


CONTAINERS: list[dict[str, Any]] = [
    {"name": "main", "image": "img:1", "args": ["--a", "1"]},
    {"name": "side", "image": "s:1"},
]

CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str, str]]]] = [
    ("identical", obj(spec={"x": 1}), obj(spec={"x": 1}), []),
    (
        "server-defaulted and bookkeeping fields are not drift",
        obj(spec={"x": 1}),
        with_meta(
            obj(spec={"x": 1, "defaulted": True}, status={"ready": False}),
            resourceVersion="9",
            uid="u",
            managedFields=[{"manager": "m"}],
            generation=3,
        ),
        [],
    ),
    ("scalar change", obj(spec={"x": 1}), obj(spec={"x": 2}), [("spec.x", "1", "2")]),
    ("int equals float", obj(spec={"x": 1}), obj(spec={"x": 1.0}), []),
    ("bool is not int", obj(spec={"x": True}), obj(spec={"x": 1}), [("spec.x", "true", "1")]),
    ("absent field", obj(spec={"x": {"y": "z"}}), obj(spec={}), [("spec.x", '{"y":"z"}', ABSENT)]),
    ("type change", obj(spec={"x": {"y": 1}}), obj(spec={"x": "str"}), [("spec.x", '{"y":1}', '"str"')]),
    (
        "other managers' annotations are not drift",
        with_meta(obj(), annotations={"mine": "1"}),
        with_meta(obj(), annotations={"mine": "1", "theirs": "2"}),
        [],
    ),
    (
        "annotation key with dots and slashes is quoted",
        with_meta(obj(), annotations={"serving.kserve.io/s3-region": "us-east-1"}),
        with_meta(obj(), annotations={"serving.kserve.io/s3-region": "eu-west-1"}),
        [('metadata.annotations["serving.kserve.io/s3-region"]', '"us-east-1"', '"eu-west-1"')],
    ),
    ("missing label", with_meta(obj(), labels={"app": "x"}), obj(), [("metadata.labels.app", '"x"', ABSENT)]),
    (
        "keyed list: order and extra items ignored, defaults inside items ignored",
        obj(spec={"containers": CONTAINERS}),
        obj(
            spec={
                "containers": [
                    {**CONTAINERS[1], "terminationMessagePath": "/dev/t"},
                    CONTAINERS[0],
                    {"name": "istio-proxy", "image": "proxy"},
                ]
            }
        ),
        [],
    ),
    (
        "keyed list: item field changed",
        obj(spec={"containers": CONTAINERS}),
        obj(spec={"containers": [{**CONTAINERS[0], "image": "img:2"}, CONTAINERS[1]]}),
        [("spec.containers[name=main].image", '"img:1"', '"img:2"')],
    ),
    (
        "keyed list: item missing",
        obj(imagePullSecrets=[{"name": "harbor-credentials"}]),
        obj(imagePullSecrets=[]),
        [("imagePullSecrets[name=harbor-credentials]", '{"name":"harbor-credentials"}', ABSENT)],
    ),
    (
        "atomic list of scalars compared whole",
        obj(spec={"args": ["--a", "1"]}),
        obj(spec={"args": ["--a", "2"]}),
        [("spec.args", '["--a","1"]', '["--a","2"]')],
    ),
    (
        "atomic list of mappings (rules): an extra rule is drift",
        obj(spec={"rules": [{"from": [{"source": {"principals": ["p"]}}]}]}),
        obj(
            spec={
                "rules": [
                    {"from": [{"source": {"principals": ["p"]}}]},
                    {"from": [{"source": {"namespaces": ["ns"]}}]},
                ]
            }
        ),
        [
            (
                "spec.rules",
                '[{"from":[{"source":{"principals":["p"]}}]}]',
                '[{"from":[{"source":{"principals":["p"]}}]},{"from":[{"source":{"namespaces":["ns"]}}]}]',
            )
        ],
    ),
    (
        "atomic list item with an extra key is drift",
        obj(spec={"rules": [{"a": 1}]}),
        obj(spec={"rules": [{"a": 1, "b": 2}]}),
        [("spec.rules", '[{"a":1}]', '[{"a":1,"b":2}]')],
    ),
]


@pytest.mark.parametrize(("name", "desired", "live", "want"), CASES, ids=[c[0] for c in CASES])
def test_diff(
    name: str, desired: dict[str, Any], live: dict[str, Any], want: list[tuple[str, str, str]]
) -> None:
    d = diff(desired, live)
    assert not d.missing
    assert [(p.path, p.desired_repr, p.live_repr) for p in d.paths] == want
    assert d.drifted == bool(want)


def test_missing_object() -> None:
    d = diff(obj(), None)
    assert d.missing and d.drifted and d.paths == ()
    assert d.describe() == ["ServiceAccount/n/a does not exist"]
    assert d.to_dict() == {"ref": "ServiceAccount/n/a", "missing": True, "paths": []}


def test_long_values_are_truncated() -> None:
    d = diff(obj(spec={"x": "a" * 500}), obj(spec={"x": "b"}))
    assert len(d.paths[0].desired_repr) <= 120 and d.paths[0].desired_repr.endswith("…")


SECRET_VALUE = "KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg"



def secret(**data: str) -> dict[str, Any]:
    return obj("Secret", data={k: b64(v) for k, v in data.items()})


@pytest.mark.parametrize(
    ("desired", "live", "want"),
    [
        # hashed desired (rendered from the World) vs hashed live (from the World)
        (hash_secret(secret(K=SECRET_VALUE)), hash_secret(secret(K=SECRET_VALUE)), []),
        (
            hash_secret(secret(K=SECRET_VALUE)),
            hash_secret(secret(K="other")),
            [("data.K", HASH_DIFFERS, HASH_DIFFERS)],
        ),
        # hashed desired vs a raw live object: hashed on the fly
        (hash_secret(secret(K=SECRET_VALUE)), secret(K=SECRET_VALUE), []),
        (hash_secret(secret(K=SECRET_VALUE)), secret(K="other"), [("data.K", HASH_DIFFERS, HASH_DIFFERS)]),
        # stringData in desired compares with live base64 data
        (obj("Secret", stringData={"K": SECRET_VALUE}), secret(K=SECRET_VALUE), []),
        (
            obj("Secret", stringData={"K": SECRET_VALUE}),
            secret(K="other"),
            [("data.K", HASH_DIFFERS, HASH_DIFFERS)],
        ),
        # extra live keys are someone else's; a missing key is drift, without its value
        (hash_secret(secret(K=SECRET_VALUE)), hash_secret(secret(K=SECRET_VALUE, X="y")), []),
        (
            hash_secret(secret(K=SECRET_VALUE, J="v")),
            hash_secret(secret(K=SECRET_VALUE)),
            [("data.J", "<set>", ABSENT)],
        ),
    ],
)
def test_secrets_compare_by_hash_and_never_show_values(
    desired: dict[str, Any], live: dict[str, Any], want: list[tuple[str, str, str]]
) -> None:
    d = diff(desired, live)
    assert [(p.path, p.desired_repr, p.live_repr) for p in d.paths] == want
    text = repr(d) + str(d.to_dict()) + " ".join(d.describe())
    for leak in (SECRET_VALUE, b64(SECRET_VALUE), "other", b64("other"), "sha256:"):
        assert leak not in text
