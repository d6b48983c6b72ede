"""Data-arrival and run-on-startup sensors, evaluated against real files and a real server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE


def _evaluate(defs, name: str, cursor: str | None):
    context = build_sensor_context(cursor=cursor, instance=DagsterInstance.ephemeral())
    result = defs.resolve_sensor_def(name)(context)
    return result, context.cursor


def _project(write_config, path: str) -> PipelineConfig:
    return PipelineConfig(
        write_config(
            f"""
            scheduling: {{data_arrival: {{enabled: true, interval_seconds: 5}}}}
            tasks:
              copy: {{callable: "{SAMPLE}:copy_file", config: {{path: "{path}"}}}}
            """
        )
    )


def test_new_or_changed_file_requests_exactly_one_run(write_config):
    config = _project(write_config, "input.txt")
    (config.project_root / "input.txt").write_text("day 1")
    defs = build_definitions(config)
    first, cursor = _evaluate(defs, "data_arrival_sensor", None)
    assert isinstance(first, SkipReason) and "baseline recorded" in first.skip_message
    same, same_cursor = _evaluate(defs, "data_arrival_sensor", cursor)
    assert isinstance(same, SkipReason) and same_cursor == cursor
    (config.project_root / "input.txt").write_text("day 2, more rows")
    changed, new_cursor = _evaluate(defs, "data_arrival_sensor", cursor)
    assert isinstance(changed, RunRequest)
    assert changed.run_key == f"data-{new_cursor}" and new_cursor != cursor
    assert changed.tags["recomart/trigger"] == "data_arrival"


def test_a_new_daily_file_in_a_directory_triggers(write_config):
    config = _project(write_config, "landing")
    landing = config.project_root / "landing"
    landing.mkdir()
    (landing / "2026-01-01.csv").write_text("a")
    defs = build_definitions(config)
    _, cursor = _evaluate(defs, "data_arrival_sensor", None)
    (landing / "2026-01-02.csv").write_text("b")
    result, _ = _evaluate(defs, "data_arrival_sensor", cursor)
    assert isinstance(result, RunRequest)


def test_url_source_uses_etag(write_config):
    etag = {"value": '"v1"'}

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("ETag", etag["value"])
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/events.csv"
        defs = build_definitions(_project(write_config, url))
        _, cursor = _evaluate(defs, "data_arrival_sensor", None)
        unchanged, _ = _evaluate(defs, "data_arrival_sensor", cursor)
        assert isinstance(unchanged, SkipReason)
        etag["value"] = '"v2"'
        changed, _ = _evaluate(defs, "data_arrival_sensor", cursor)
        assert isinstance(changed, RunRequest)
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_source_skips_with_the_reason(write_config):
    defs = build_definitions(_project(write_config, "http://127.0.0.1:9/nothing.csv"))
    result, cursor = _evaluate(defs, "data_arrival_sensor", "previous")
    assert isinstance(result, SkipReason) and "cannot read the sources" in result.skip_message
    assert cursor == "previous"


def test_run_on_startup_runs_once_per_config_version(write_config):
    path = write_config(
        f'scheduling: {{run_on_startup: true}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    defs = build_definitions(PipelineConfig(path))
    first, cursor = _evaluate(defs, "run_on_startup_sensor", None)
    assert isinstance(first, RunRequest) and first.run_key == f"startup-{cursor}"
    again, _ = _evaluate(defs, "run_on_startup_sensor", cursor)
    assert isinstance(again, SkipReason)
    path.write_text(path.read_text().replace('make_numbers"', 'make_numbers", retry_count: 1'))
    new_version, _ = _evaluate(
        build_definitions(PipelineConfig(path)), "run_on_startup_sensor", cursor
    )
    assert isinstance(new_version, RunRequest)


def test_copying_the_same_file_again_does_not_trigger(write_config):
    config = _project(write_config, "landing")
    landing = config.project_root / "landing"
    landing.mkdir()
    (landing / "day1.csv").write_text("a,b\n1,2\n")
    defs = build_definitions(config)
    _, cursor = _evaluate(defs, "data_arrival_sensor", None)
    (landing / "day1.csv").write_text("a,b\n1,2\n")  # same content, new modification time
    result, _ = _evaluate(defs, "data_arrival_sensor", cursor)
    assert isinstance(result, SkipReason)
