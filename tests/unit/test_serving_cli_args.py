"""Command-line parsing: KServe's underscore flag names and the dashed forms mean the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.cli import _without_workers, parser


@pytest.mark.parametrize("argv", [
    ["--model_dir", "/mnt/models", "--model_name", "iris", "--http_port", "8081", "--max_body_bytes", "10"],
    ["--model-dir", "/mnt/models", "--model-name", "iris", "--http-port", "8081", "--max-body-bytes", "10"],
    ["--model-dir=/mnt/models", "--model_name=iris", "--http-port=8081", "--max-body-bytes=10"],
])
def test_flag_spellings(argv: list[str]) -> None:
    args, unknown = parser().parse_known_args(argv)
    assert (args.model_dir, args.model_name, args.http_port, args.max_body_bytes) == (
        Path("/mnt/models"), "iris", 8081, 10)
    assert unknown == [] and args.workers == 1 and not args.wait_for_model and args.predict_proba is None


def test_defaults_and_kserve_extras() -> None:
    args, unknown = parser().parse_known_args(["--model_dir", "d", "--grpc_port", "8081", "--wait-for-model",
                                               "--log-format", "console", "--workers", "3"])
    assert args.model_name == "model" and args.http_port == 8080 and args.host == "0.0.0.0"
    assert args.wait_for_model and args.log_format == "console" and args.workers == 3
    assert unknown == ["--grpc_port", "8081"]


def test_model_dir_is_required() -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_known_args(["--model_name", "iris"])
    assert exc.value.code == 2


@pytest.mark.parametrize(("argv", "expected"), [
    (["--model_dir", "d", "--workers", "4", "--http_port", "1"], ["--model_dir", "d", "--http_port", "1"]),
    (["--workers=4", "--model_dir", "d"], ["--model_dir", "d"]),
    (["--model_dir", "d"], ["--model_dir", "d"]),
])
def test_worker_argv_drops_workers(argv: list[str], expected: list[str]) -> None:
    assert _without_workers(argv) == expected
