"""A source that keeps failing opens the circuit; ingestion then serves the last good snapshot."""

from __future__ import annotations

import socket

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.runner import TaskFailure, run_task


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_circuit_opens_and_fallback_data_is_marked_degraded(tmp_path):
    generate_dataset(
        tmp_path / "data", users=60, items=30, interactions=800, seed=1, file_format="csv"
    )
    config_path = tmp_path / "pipeline_config.yaml"
    config_path.write_text("tasks:\n  ingestion: {}\n")
    good = run_task(PipelineConfig(config_path), "ingestion", "good-run")
    assert good.checkpoint.metadata["degraded"] is False

    url = f"http://127.0.0.1:{_closed_port()}/interactions.csv"
    config_path.write_text(
        "tasks:\n  ingestion:\n    config:\n"
        f"      source: {{interactions: '{url}'}}\n"
        "      circuit_breaker: {failure_threshold: 2, cooldown_seconds: 600}\n"
    )
    config = PipelineConfig(config_path)
    for attempt in (1, 2):
        with pytest.raises(TaskFailure) as excinfo:
            run_task(config, "ingestion", "bad-run", attempt=attempt)
        assert excinfo.value.error_class == "connection_error"
    degraded = run_task(config, "ingestion", "bad-run", attempt=3)
    assert degraded.checkpoint.metadata["degraded"] is True
    assert degraded.checkpoint.metadata["fallback_run_id"] == "good-run"
    assert "circuit 'ingestion' is open" in degraded.checkpoint.metadata["degraded_reason"]
    for table in ("interactions", "items", "users"):
        assert (
            degraded.checkpoint.artifacts[table].sha256 == good.checkpoint.artifacts[table].sha256
        )


def test_open_circuit_without_a_snapshot_fails_clearly(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/interactions.csv"
    config_path = tmp_path / "pipeline_config.yaml"
    config_path.write_text(
        "tasks:\n  ingestion:\n    config:\n"
        f"      source: {{interactions: '{url}'}}\n"
        "      circuit_breaker: {failure_threshold: 1, cooldown_seconds: 600}\n"
    )
    config = PipelineConfig(config_path)
    with pytest.raises(TaskFailure):
        run_task(config, "ingestion", "r", attempt=1)
    with pytest.raises(TaskFailure, match="no earlier good snapshot"):
        run_task(config, "ingestion", "r", attempt=2)
