"""OpenTelemetry: one trace per pipeline run, one span per task attempt.

The run id (a UUID, 128 bits) *is* the trace id, so the run's correlation id found in every
log line also finds its trace. Spans are exported when they end (SimpleSpanProcessor): a
task process may be killed right after, and a batch would be lost with it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig

_providers: dict[tuple[str, ...], TracerProvider] = {}
_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line (for environments without a collector)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _lock, self.path.open("a", encoding="utf-8") as handle:
            for span in spans:
                handle.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def trace_id_for(run_id: str) -> int:
    """The run id as a trace id: UUIDs map 1:1; any other id is hashed to 128 bits."""
    hex_id = run_id.replace("-", "")
    if len(hex_id) == 32 and all(c in "0123456789abcdef" for c in hex_id.lower()):
        return int(hex_id, 16)
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16)


def _provider(config: PipelineConfig) -> TracerProvider:
    settings = config.settings.tracking.opentelemetry
    target = (
        settings.endpoint
        if settings.exporter == "otlp"
        else str(config.resolve_path(settings.file))
    )
    service = settings.service_name or config.name
    key = (settings.exporter, target, service)
    with _lock:
        if key not in _providers:
            if settings.exporter == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter: SpanExporter = OTLPSpanExporter(endpoint=target, timeout=5)
            else:
                exporter = JsonLinesSpanExporter(Path(target))
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            _providers[key] = provider
        return _providers[key]


@contextmanager
def task_span(
    config: PipelineConfig, task: str, run_id: str, attempt: int
) -> Iterator[trace.Span | None]:
    """A span for one attempt, in the run's trace; yields None when tracing is off."""
    if not config.settings.tracking.opentelemetry.enabled:
        yield None
        return
    trace_id = trace_id_for(run_id)
    run_context = trace.set_span_in_context(
        NonRecordingSpan(
            SpanContext(
                trace_id=trace_id,
                span_id=trace_id & 0xFFFFFFFFFFFFFFFF or 1,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
    )
    tracer = _provider(config).get_tracer("recomart_pipeline")
    attributes: dict[str, AttributeValue] = {
        "recomart.pipeline": config.name,
        "recomart.run_id": run_id,
        "recomart.task": task,
        "recomart.attempt": attempt,
        "recomart.retries": attempt - 1,
    }
    with tracer.start_as_current_span(
        f"task {task}",
        context=run_context,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def finish_span(
    span: trace.Span | None, status: str, duration_s: float, error_class: str | None
) -> None:
    if span is None:
        return
    span.set_attribute("recomart.status", status)
    span.set_attribute("recomart.duration_s", round(duration_s, 4))
    if error_class:
        span.set_attribute("recomart.error_class", error_class)
        span.set_status(Status(StatusCode.ERROR, error_class))
    else:
        span.set_status(Status(StatusCode.OK))
