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
    argv = ["--model_dir", "d", "--enable_docs_url", "true", "--wait-for-model", "--log-format", "console",
            "--workers", "3"]
    args, unknown = parser().parse_known_args(argv)
    assert args.model_name == "model" and args.http_port == 8080 and args.host == "0.0.0.0"
    assert args.grpc_port == 8081 and args.enable_grpc  # KServe's defaults
    assert args.wait_for_model and args.log_format == "console" and args.workers == 3
    assert unknown == ["--enable_docs_url", "true"]


@pytest.mark.parametrize(("argv", "port", "enabled"), [
    (["--grpc_port", "9000"], 9000, True),
    (["--grpc-port=0"], 0, True),
    (["--enable_grpc", "false"], 8081, False),
    (["--enable-grpc=False"], 8081, False),
    (["--enable_grpc", "1"], 8081, True),
])
def test_grpc_flags(argv: list[str], port: int, enabled: bool) -> None:
    args, unknown = parser().parse_known_args(["--model_dir", "d", *argv])
    assert (args.grpc_port, args.enable_grpc, unknown) == (port, enabled, [])


def test_enable_grpc_takes_a_boolean() -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_known_args(["--model_dir", "d", "--enable_grpc", "maybe"])
    assert exc.value.code == 2


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
