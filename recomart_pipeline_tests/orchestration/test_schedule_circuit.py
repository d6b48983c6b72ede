"""A schedule that keeps failing pauses itself, notifies once, and resumes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import DagsterInstance, build_schedule_context

from recomart_pipeline import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.schedule_circuit import resume_schedule
from recomart_pipeline_tests.conftest import SAMPLE

SCHEDULE = "automated_pipeline_job_schedule"


def _tick(defs, instance):
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 1, 5, 2, tzinfo=ZoneInfo("UTC")),
        repository_def=defs.get_repository_def(),
    )
    return defs.resolve_schedule_def(SCHEDULE).evaluate_tick(context)


def _scheduled_run(defs, instance):
    defs.resolve_job_def("automated_pipeline_job").execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/schedule_name": SCHEDULE}
    )


def test_schedule_pauses_after_failures_then_resumes(write_config, webhook_server, tmp_path):
    base, posts = webhook_server
    text = f"""
        scheduling: {{enabled: true, pause_after_failures: 2}}
        notifications:
          enabled: true
          slack: {{enabled: true, webhook_url: "{base}/hook"}}
        tasks:
          work: {{callable: "{SAMPLE}:bad_schema"}}
        """
    path = write_config(text)
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home"))
    defs = build_definitions(PipelineConfig(path))
    _scheduled_run(defs, instance)
    assert len(_tick(defs, instance).run_requests) == 1  # one failure: keeps running
    _scheduled_run(defs, instance)
    paused = _tick(defs, instance)
    assert paused.run_requests == [] and "paused after 2 consecutive failed" in paused.skip_message
    assert _tick(defs, instance).run_requests == []
    assert len(posts) == 1 and "schedule paused after 2" in posts[0]["json"]["text"]  # once

    path.write_text(path.read_text().replace("bad_schema", "make_numbers"))
    fixed = build_definitions(PipelineConfig(path))
    fixed.resolve_job_def("automated_pipeline_job").execute_in_process(instance=instance)  # manual
    assert len(_tick(fixed, instance).run_requests) == 1  # a success ends the pause

    path.write_text(path.read_text().replace("make_numbers", "bad_schema"))
    broken = build_definitions(PipelineConfig(path))
    _scheduled_run(broken, instance)
    _scheduled_run(broken, instance)
    assert _tick(broken, instance).run_requests == []
    resume_schedule(PipelineConfig(path))  # the operator restarts it
    assert len(_tick(broken, instance).run_requests) == 1
