"""A model that failed to load because the storage credentials were missing or refused is not a
model in the wrong format (issue 13 item 1: a critical ``model-wrong-format`` whose evidence
was ``NoCredentialsError``)."""

from __future__ import annotations

import pytest

from daemon.core.findings import Code
from tests.unit import factories as fx

CASES = [
    ("NoCredentialsError", "Failed to load model: botocore.exceptions.NoCredentialsError: "
                           "Unable to locate credentials"),
    ("403 from the store", "could not load model: An error occurred (SignatureDoesNotMatch) when calling "
                           "the GetObject operation"),
    ("InvalidAccessKeyId", "failed to load model: InvalidAccessKeyId: The AWS Access Key Id you provided "
                           "does not exist"),
]


@pytest.mark.parametrize(("name", "message"), CASES, ids=[c[0] for c in CASES])
def test_credential_failures_are_not_a_wrong_format(name: str, message: str) -> None:
    c = fx.healthy()
    fx.set_isvc_unready(c, reason="ModelLoadFailed", message=message, failure=("ModelLoadFailed", message))
    codes = fx.run(c).codes
    assert Code.MODEL_WRONG_FORMAT.value not in codes, codes


def test_a_real_format_failure_still_is() -> None:
    c = fx.healthy()
    msg = "failed to load model: unknown model format (expected .bst/.json/.ubj)"
    fx.set_isvc_unready(c, reason="ModelLoadFailed", message=msg, failure=("ModelLoadFailed", msg))
    assert Code.MODEL_WRONG_FORMAT.value in fx.run(c).codes
