"""Reading the ``metav1.Status`` body of a refused request (what kubectl prints as the error)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client.rest import ApiException


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    """The Status body of the ApiException; asserts it is a Status whose ``code`` is the HTTP status."""
    body = json.loads(exc.value.body)
    assert body["kind"] == "Status" and body["code"] == exc.value.status
    return dict(body)
