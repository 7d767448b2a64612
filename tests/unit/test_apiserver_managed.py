"""Server-side apply and managedFields bookkeeping as pure functions, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.apiserver.managed import (
    ApplyConflict,
    Scope,
    apply,
    comparable,
    field_set,
    from_fields_v1,
    record_update,
    render_path,
    to_fields_v1,
)

CR = Scope(builtin=False, exclude_status=True)
BUILTIN = Scope(builtin=True)
AV = "serving.kserve.io/v1beta1"


def cfg(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": AV, "kind": "InferenceService", "metadata": {"name": "iris", **meta}, "spec": spec}


def run(
    live: dict[str, Any], config: dict[str, Any], manager: str, *, force: bool = False, scope: Scope = CR
) -> dict[str, Any]:
    return apply(live, config, manager=manager, api_version=AV, scope=scope, force=force, now="T")


def owners(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{e['manager']}/{e['operation']}": e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])
    }


FIELD_SET_CASES: list[tuple[str, dict[str, Any], Scope, set[tuple[str, ...]]]] = [
    (
        "server metadata and apiVersion/kind are never owned",
        {"apiVersion": "v1", "kind": "X", "metadata": {"name": "n", "uid": "u", "labels": {"a": "b"}}},
        CR,
        {("f:metadata", "f:labels", "f:a")},
    ),
    (
        "keyed lists on built-ins",
        {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        BUILTIN,
        {
            ("f:spec", "f:containers", 'k:{"name":"c"}', "."),
            ("f:spec", "f:containers", 'k:{"name":"c"}', "f:name"),
            ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"),
        },
    ),
    (
        "lists are atomic on custom resources",
        {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        CR,
        {("f:spec", "f:containers")},
    ),
    (
        "finalizers are a set",
        {"metadata": {"finalizers": ["a", "b"]}},
        CR,
        {("f:metadata", "f:finalizers", 'v:"a"'), ("f:metadata", "f:finalizers", 'v:"b"')},
    ),
    ("empty map is a leaf", {"spec": {}}, CR, {("f:spec",)}),
    ("status excluded on the main resource", {"spec": {"a": 1}, "status": {"b": 2}}, CR, {("f:spec", "f:a")}),
    (
        "only status through /status",
        {"spec": {"a": 1}, "status": {"b": 2}},
        Scope(builtin=False, status_only=True),
        {("f:status", "f:b")},
    ),
    ("nulls are not owned", {"spec": {"a": None, "b": 1}}, CR, {("f:spec", "f:b")}),
]


@pytest.mark.parametrize(
    ("case", "obj", "scope", "expected"), FIELD_SET_CASES, ids=[c[0] for c in FIELD_SET_CASES]
)
def test_field_set(case: str, obj: dict[str, Any], scope: Scope, expected: set[tuple[str, ...]]) -> None:
    fs = field_set(obj, scope)
    assert fs == expected
    assert from_fields_v1(to_fields_v1(fs)) == fs


def test_fields_v1_wire_shape() -> None:
    fs = field_set({"spec": {"containers": [{"name": "c"}]}, "metadata": {"labels": {"a": "b"}}}, BUILTIN)
    assert to_fields_v1(fs) == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:name": {}}}},
    }


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("f:spec", "f:replicas"), ".spec.replicas"),
        (("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"), '.spec.containers[name="c"].image'),
        (("f:metadata", "f:finalizers", 'v:"x"'), '.metadata.finalizers[="x"]'),
    ],
)
def test_render_path(path: tuple[str, ...], text: str) -> None:
    assert render_path(path) == text


def test_create_records_the_applier() -> None:
    obj = run({}, cfg({"a": 1}, labels={"l": "v"}), "warden")
    assert obj["spec"] == {"a": 1} and obj["metadata"]["labels"] == {"l": "v"}
    assert owners(obj) == {"warden/Apply": {"f:metadata": {"f:labels": {"f:l": {}}}, "f:spec": {"f:a": {}}}}
    assert obj["metadata"]["managedFields"][0]["time"] == "T"


def test_fields_no_longer_sent_are_removed_unless_owned_elsewhere() -> None:
    obj = run({}, cfg({"a": 1, "b": 2, "c": 3}), "warden")
    obj = run(obj, cfg({"c": 3}), "helm")  # shares c
    obj = run(obj, cfg({"a": 1}), "warden")  # drops b (gone) and c (kept: helm owns it)
    assert obj["spec"] == {"a": 1, "c": 3}
    assert owners(obj)["warden/Apply"] == {"f:spec": {"f:a": {}}}


def test_fields_set_by_an_update_survive_the_appliers_removal() -> None:
    obj = run({}, cfg({"a": 1}), "warden")
    new = {**obj, "spec": {"a": 1, "extra": True}}
    record_update(obj, new, manager="kubectl-edit", api_version=AV, scope=CR, now="T2")
    assert owners(new)["kubectl-edit/Update"] == {"f:spec": {"f:extra": {}}}
    again = run(new, cfg({"a": 1}), "warden")
    assert again["spec"] == {"a": 1, "extra": True}


def test_conflict_names_the_other_manager_and_force_takes_the_field() -> None:
    obj = run({}, cfg({"a": 1}), "warden")
    with pytest.raises(ApplyConflict) as e:
        run(obj, cfg({"a": 2}), "other")
    assert str(e.value) == 'Apply failed with 1 conflict: conflict with "warden": .spec.a'
    forced = run(obj, cfg({"a": 2}), "other", force=True)
    assert forced["spec"] == {"a": 2} and set(owners(forced)) == {"other/Apply"}


def test_conflict_with_an_update_manager_says_using() -> None:
    obj = run({}, cfg({"a": 1}), "warden")
    new = {**obj, "spec": {"a": 5}}
    record_update(obj, new, manager="kubectl-edit", api_version=AV, scope=CR, now="T2")
    # The update took `a` away from warden ...
    assert "warden/Apply" not in owners(new)
    # ... so warden re-applying its value conflicts with the editor.
    with pytest.raises(ApplyConflict) as e:
        run(new, cfg({"a": 1}), "warden")
    assert str(e.value) == f'Apply failed with 1 conflict: conflict with "kubectl-edit" using {AV}: .spec.a'


def test_same_value_is_shared_not_a_conflict() -> None:
    obj = run({}, cfg({"a": 1}), "warden")
    shared = run(obj, cfg({"a": 1}), "helm")
    assert set(owners(shared)) == {"warden/Apply", "helm/Apply"}


def test_keyed_list_items_merge_and_drop_on_builtins() -> None:
    def sa(*names: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "sa"},
            "secrets": [{"name": n} for n in names],
        }

    obj = run({}, sa("a", "b"), "warden", scope=BUILTIN)
    obj = run(obj, sa("c"), "other", scope=BUILTIN)
    assert [s["name"] for s in obj["secrets"]] == ["a", "b", "c"]
    obj = run(obj, sa("a"), "warden", scope=BUILTIN)
    assert [s["name"] for s in obj["secrets"]] == ["a", "c"]


def test_reapplying_the_same_config_is_a_no_op() -> None:
    obj = run({}, cfg({"a": {"b": [1, 2]}}, labels={"x": "y"}), "warden")
    again = apply(
        obj,
        cfg({"a": {"b": [1, 2]}}, labels={"x": "y"}),
        manager="warden",
        api_version=AV,
        scope=CR,
        force=False,
        now="LATER",
    )
    assert comparable(again) == comparable(obj)
    assert again["metadata"]["managedFields"][0]["time"] == "T"  # unchanged ownership keeps its time


def test_status_apply_leaves_spec_alone() -> None:
    obj = run({}, cfg({"a": 1}), "warden")
    st = apply(
        obj,
        {**cfg({"a": 99}), "status": {"url": "u"}},
        manager="ctrl",
        api_version=AV,
        scope=Scope(builtin=False, status_only=True),
        force=False,
        now="T",
    )
    assert st["spec"] == {"a": 1} and st["status"] == {"url": "u"}
    entry = next(e for e in st["metadata"]["managedFields"] if e["manager"] == "ctrl")
    assert entry["subresource"] == "status" and entry["fieldsV1"] == {"f:status": {"f:url": {}}}


def test_record_update_drops_fields_that_disappeared() -> None:
    obj = run({}, cfg({"a": 1, "b": 2}), "warden")
    new = {**obj, "spec": {"a": 1}}
    record_update(obj, new, manager="editor", api_version=AV, scope=CR, now="T2")
    assert owners(new) == {"warden/Apply": {"f:spec": {"f:a": {}}}}
