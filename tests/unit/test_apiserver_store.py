"""The store's revision counter, history window and watcher fan-out; the table JSONPath subset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.apiserver.store import Store, TooOld
from sandbox.apiserver.table import human_age, json_path


def put(store: Store, name: str) -> int:
    rv = store.next_revision()
    obj = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}
    store.put("configmaps", ("ns", name), obj, rv=rv, created=True, old=None)
    return rv


def test_history_window_slides_and_compacts() -> None:
    store = Store(watch_history=3)
    rvs = [put(store, f"o{i}") for i in range(5)]  # keeps rvs[2:], window starts at rvs[1]
    _, backlog = store.subscribe("configmaps", namespace=None, since=rvs[1])
    assert [e.rv for e in backlog] == rvs[2:]
    with pytest.raises(TooOld):
        store.subscribe("configmaps", namespace=None, since=rvs[0])
    store.compact()
    with pytest.raises(TooOld):
        store.subscribe("configmaps", namespace=None, since=rvs[3])
    _, backlog = store.subscribe("configmaps", namespace=None, since=rvs[4])
    assert backlog == []


def test_mark_seeded_starts_window_for_resources_seen_later() -> None:
    store = Store()
    put(store, "a")
    seeded = store.revision
    store.mark_seeded()
    with pytest.raises(TooOld):
        store.subscribe("secrets", namespace=None, since=seeded - 1)
    store.subscribe("secrets", namespace=None, since=seeded)


def test_watchers_get_events_synchronously() -> None:
    store = Store()
    w, _ = store.subscribe("configmaps", namespace=None, since=None)
    rv = put(store, "a")
    ev = w.queue.get_nowait()
    assert ev is not None and (ev.rv, ev.type) == (rv, "ADDED")
    store.unsubscribe(w)
    put(store, "b")
    assert w.queue.empty()


def test_items_sorted_by_namespace_and_name() -> None:
    store = Store()
    for ns, name in (("b", "x"), ("a", "z"), ("a", "y")):
        rv = store.next_revision()
        store.put("configmaps", (ns, name), {"metadata": {"name": name}}, rv=rv, created=True, old=None)
    assert [o["metadata"]["name"] for o in store.items("configmaps")] == ["y", "z", "x"]
    assert [o["metadata"]["name"] for o in store.items("configmaps", "a")] == ["y", "z"]


ISVC = {
    "metadata": {"name": "iris"},
    "spec": {"formats": [{"name": "sklearn"}, {"name": "xgboost"}]},
    "status": {
        "url": "http://x",
        "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "False"}],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".status.url", ["http://x"]),
        (".status.conditions[?(@.type=='Ready')].status", ["False"]),
        ('.status.conditions[?(@.type=="PredictorReady")].status', ["True"]),
        (".spec.formats[*].name", ["sklearn", "xgboost"]),
        (".spec.formats[1].name", ["xgboost"]),
        (".spec.formats[-1].name", ["xgboost"]),
        (".status.missing", []),
        (".status.conditions[5]", []),
    ],
)
def test_json_path(path: str, expected: list[object]) -> None:
    assert json_path(ISVC, path) == expected


@pytest.mark.parametrize(
    ("ts", "age"),
    [
        ("2026-01-01T00:00:00Z", "0s"),
        ("2025-12-31T23:59:00Z", "60s"),
        ("2025-12-31T23:00:00Z", "60m"),
        ("2025-12-31T00:00:00Z", "24h"),
        ("2025-12-01T00:00:00Z", "31d"),
        ("garbage", "<unknown>"),
    ],
)
def test_human_age(ts: str, age: str) -> None:
    assert human_age(ts, datetime(2026, 1, 1, tzinfo=UTC)) == age
