"""JSON patch, merge patch and strategic merge patch as pure functions, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge

MERGE_CASES: list[tuple[Any, Any, Any]] = [
    # RFC 7386 appendix A examples
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_CASES)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_input() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


DOC = {"metadata": {"name": "x", "labels": {"a/b": "1"}}, "spec": {"list": [1, 2, 3]}}

JSON_PATCH_CASES: list[tuple[list[dict[str, Any]], Any]] = [
    ([{"op": "add", "path": "/spec/new", "value": 1}], {**DOC, "spec": {"list": [1, 2, 3], "new": 1}}),
    ([{"op": "add", "path": "/spec/list/1", "value": 9}], {**DOC, "spec": {"list": [1, 9, 2, 3]}}),
    ([{"op": "add", "path": "/spec/list/-", "value": 4}], {**DOC, "spec": {"list": [1, 2, 3, 4]}}),
    ([{"op": "remove", "path": "/spec/list/0"}], {**DOC, "spec": {"list": [2, 3]}}),
    ([{"op": "replace", "path": "/spec/list/2", "value": 0}], {**DOC, "spec": {"list": [1, 2, 0]}}),
    ([{"op": "remove", "path": "/metadata/labels/a~1b"}], {**DOC, "metadata": {"name": "x", "labels": {}}}),
    ([{"op": "move", "from": "/spec/list", "path": "/spec/moved"}], {**DOC, "spec": {"moved": [1, 2, 3]}}),
    (
        [{"op": "copy", "from": "/spec/list/0", "path": "/spec/first"}],
        {**DOC, "spec": {"list": [1, 2, 3], "first": 1}},
    ),
    ([{"op": "test", "path": "/metadata/name", "value": "x"}], DOC),
]


@pytest.mark.parametrize(("ops", "expected"), JSON_PATCH_CASES)
def test_json_patch(ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch(DOC, ops) == expected


JSON_PATCH_ERRORS: list[tuple[Any, bool]] = [
    ([{"op": "test", "path": "/metadata/name", "value": "y"}], False),
    ([{"op": "remove", "path": "/spec/missing"}], False),
    ([{"op": "replace", "path": "/spec/list/7", "value": 1}], False),
    ([{"op": "add", "path": "/no/such/parent", "value": 1}], False),
    ([{"op": "frobnicate", "path": "/spec"}], True),
    ([{"op": "add", "path": "spec"}], True),
    ({"op": "add"}, True),
    ([{"op": "add", "path": "/spec/x"}], True),
]


@pytest.mark.parametrize(("ops", "bad_request"), JSON_PATCH_ERRORS)
def test_json_patch_errors(ops: Any, bad_request: bool) -> None:
    with pytest.raises(PatchError) as e:
        json_patch(DOC, ops)
    assert e.value.bad_request is bad_request


POD = {
    "metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "v1",
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "m", "mountPath": "/mnt/models"}],
                "ports": [{"containerPort": 8080}],
            },
            {"name": "side", "image": "s", "args": ["--x"]},
        ],
        "volumes": [{"name": "m", "emptyDir": {}}],
        "tolerations": [{"key": "k"}],
    },
}

SMP_CASES: list[tuple[str, dict[str, Any], Any]] = [
    (
        "containers merge by name",
        {"spec": {"containers": [{"name": "main", "image": "v2"}]}},
        lambda r: [c["image"] for c in r["spec"]["containers"]] == ["v2", "s"],
    ),
    (
        "new container appended",
        {"spec": {"containers": [{"name": "new", "image": "n"}]}},
        # New elements go before the live ones the patch does not name (mergeSortedSlice).
        lambda r: [c["name"] for c in r["spec"]["containers"]] == ["new", "main", "side"],
    ),
    (
        "env merges by name",
        {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}},
        lambda r: [e["name"] for e in r["spec"]["containers"][0]["env"]] == ["B", "A"],
    ),
    (
        "volumeMounts merge by mountPath",
        {
            "spec": {
                "containers": [{"name": "main", "volumeMounts": [{"name": "m2", "mountPath": "/mnt/models"}]}]
            }
        },
        lambda r: r["spec"]["containers"][0]["volumeMounts"] == [{"name": "m2", "mountPath": "/mnt/models"}],
    ),
    (
        "container ports merge by containerPort",
        {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 8080, "name": "http"}]}]}},
        lambda r: r["spec"]["containers"][0]["ports"] == [{"containerPort": 8080, "name": "http"}],
    ),
    (
        "$patch delete removes an item",
        {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
        lambda r: [c["name"] for c in r["spec"]["containers"]] == ["main"],
    ),
    (
        "atomic lists are replaced",
        {"spec": {"tolerations": [{"key": "other"}]}},
        lambda r: r["spec"]["tolerations"] == [{"key": "other"}],
    ),
    (
        "args replaced",
        {"spec": {"containers": [{"name": "side", "args": ["--y"]}]}},
        lambda r: r["spec"]["containers"][1]["args"] == ["--y"],
    ),
    (
        "finalizers merge as a set",
        {"metadata": {"finalizers": ["y", "x"]}},
        lambda r: r["metadata"]["finalizers"] == ["x", "y"],
    ),
    (
        "null deletes a key",
        {"metadata": {"labels": {"a": None, "b": "2"}}},
        lambda r: r["metadata"]["labels"] == {"b": "2"},
    ),
    (
        "$patch replace on a map",
        {"spec": {"$patch": "replace", "containers": []}},
        lambda r: r["spec"] == {"containers": []},
    ),
    (
        "$patch replace on a list",
        {"spec": {"volumes": [{"name": "n"}, {"$patch": "replace"}]}},
        lambda r: r["spec"]["volumes"] == [{"name": "n"}],
    ),
    (
        "$deleteFromPrimitiveList",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}},
        lambda r: r["metadata"]["finalizers"] == [],
    ),
    (
        "$setElementOrder ignored",
        {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}},
        lambda r: [c["name"] for c in r["spec"]["containers"]] == ["main", "side"],
    ),
    (
        "$retainKeys keeps only listed keys",
        {"spec": {"$retainKeys": ["volumes"]}},
        lambda r: r["spec"] == {"volumes": [{"name": "m", "emptyDir": {}}]},
    ),
    (
        "empty keyed list in a patch changes nothing",
        {"spec": {"volumes": []}},
        lambda r: r["spec"]["volumes"] == [{"name": "m", "emptyDir": {}}],
    ),
]


@pytest.mark.parametrize(("case", "patch", "check"), SMP_CASES, ids=[c[0] for c in SMP_CASES])
def test_strategic_merge(case: str, patch: dict[str, Any], check: Any) -> None:
    result = strategic_merge(POD, patch)
    assert check(result), result
    assert POD["spec"]["containers"][0]["image"] == "v1"  # input untouched


def test_strategic_merge_requires_merge_key() -> None:
    with pytest.raises(PatchError):
        strategic_merge(POD, {"spec": {"containers": [{"image": "no-name"}]}})
    with pytest.raises(PatchError):
        strategic_merge(POD, {"spec": {"$patch": "explode"}})
