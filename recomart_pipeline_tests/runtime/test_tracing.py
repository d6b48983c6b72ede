"""OpenTelemetry: spans per task attempt in the run's trace, to a local OTLP collector or a file."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterInstance
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline_tests.conftest import SAMPLE


@pytest.fixture
def collector():
    spans: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                for scope in resource_spans.scope_spans:
                    spans.extend(scope.spans)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", spans
    finally:
        server.shutdown()
        server.server_close()


def _attributes(span) -> dict:
    out = {}
    for item in span.attributes:
        value = item.value
        out[item.key] = value.string_value or value.int_value or value.double_value
    return out


def _run(path):
    config = PipelineConfig(path)
    job = build_definitions(config).resolve_job_def("automated_pipeline_job")
    return config, job.execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )


def test_one_trace_per_run_one_span_per_attempt(write_config, collector):
    endpoint, spans = collector
    path = write_config(
        f"""
        retry_policy: {{max_backoff: 0.01, jitter: 0}}
        tracking:
          opentelemetry: {{enabled: true, exporter: otlp, endpoint: "{endpoint}"}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: 2, retry_delay: 0.01}}
        """
    )
    _, result = _run(path)
    assert result.success
    assert {span.trace_id.hex() for span in spans} == {result.run_id.replace("-", "")}
    by_attempt = {(a["recomart.task"], a["recomart.attempt"]): a for a in map(_attributes, spans)}
    assert set(by_attempt) == {("numbers", 1), ("flaky", 1), ("flaky", 2), ("flaky", 3)}
    assert by_attempt[("flaky", 1)]["recomart.error_class"] == "connection_error"
    assert by_attempt[("flaky", 3)]["recomart.status"] == "SUCCESS"
    assert by_attempt[("flaky", 3)]["recomart.retries"] == 2
    assert by_attempt[("numbers", 1)]["recomart.duration_s"] > 0


def test_file_exporter_writes_json_lines(write_config):
    path = write_config(
        f"""
        tracking:
          opentelemetry: {{enabled: true, exporter: file, file: logs/traces.jsonl}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    config, result = _run(path)
    lines = [
        json.loads(line)
        for line in (config.project_root / "logs" / "traces.jsonl").read_text().splitlines()
    ]
    assert [line["name"] for line in lines] == ["task numbers"]
    assert lines[0]["context"]["trace_id"] == "0x" + result.run_id.replace("-", "")
    assert lines[0]["attributes"]["recomart.status"] == "SUCCESS"
