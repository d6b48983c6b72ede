"""The console's short line for a task event, and recovering an event Dagster stored."""

from __future__ import annotations

import json

from recomart_pipeline.runtime.task_logging import console_text, short_line, split_fields


def test_short_line_keeps_a_few_scalar_fields_and_metrics() -> None:
    fields = {
        "status": "SUCCESS",
        "duration_s": 1.23456,
        "output_paths": {"numbers": "/x/numbers.json"},
        "metrics": {"rows": 4, "rmse": 0.912345, "sum": 6, "extra": 1},
    }
    assert short_line("task succeeded", fields) == (
        "task succeeded (duration_s=1.235, rows=4, rmse=0.9123)"
    )


def test_short_line_cuts_long_text_and_multiline_messages() -> None:
    line = short_line("task failed: boom\nTraceback ...", {"reason": "x" * 200, "ok": None})
    assert line.startswith("task failed: boom (reason=xxx")
    assert "…" in line and "ok=null" in line and "Traceback" not in line


def test_forwarded_events_split_back_into_message_and_fields() -> None:
    fields = {"rows": 4, "nested": {"a": {"b": 1}}}
    text = f"wrote {{braces}} in the message {json.dumps(fields)}"
    assert split_fields(text) == ("wrote {braces} in the message", fields)
    assert split_fields("no fields here") == ("no fields here", {})
    assert console_text(text, verbose=False) == "wrote {braces} in the message (rows=4)"
    assert console_text(text, verbose=True) == text


def test_the_start_event_is_left_to_the_step_line() -> None:
    text = 'task started {"status": "RUNNING", "input_paths": {}}'
    assert console_text(text, verbose=False, step_line_shown=True) is None
    assert console_text(text, verbose=False) == "task started"
