"""Notifications end to end: a real run, the run-status sensors, real SMTP and webhook servers."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from recomart_pipeline import PipelineConfig
from recomart_pipeline.notify import dispatch
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.notifications import build_notice
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.notify.conftest import free_port

SECRET_PASSWORD = "smtp-secret-pw"
WEBHOOK_TOKEN = "T0001/B0001/webhook-secret-token"


def _config(write_config, smtp_port: int, webhook_base: str, *, flaky_retries: int = 1):
    return write_config(
        f"""
        pipeline: {{name: shop, environment: staging}}
        retry_policy: {{max_backoff: 0.01, jitter: 0}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
          flaky: {{callable: "{SAMPLE}:flaky", retry_count: {flaky_retries}, retry_delay: 0.01, owner: data_eng}}
        notifications:
          enabled: true
          ui_base_url: http://dagster.example:3000/
          owners: {{data_eng: [data-eng@example.com]}}
          email:
            enabled: true
            smtp_server: 127.0.0.1
            smtp_port: {smtp_port}
            security: plain
            username: pipeline-bot
            password: ${{TEST_SMTP_PASSWORD}}
            recipients: [ops@example.com, ml@example.com]
            notify_success: true
          slack:
            enabled: true
            webhook_url: "{webhook_base}/services/${{TEST_WEBHOOK_TOKEN}}"
            channel: "#alerts"
            notify_success: false
        """
    )


def _run_and_notify(path, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SECRET_PASSWORD)
    monkeypatch.setenv("TEST_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    monkeypatch.setenv("SAMPLE_SECRET", SECRET_PASSWORD)
    config = PipelineConfig(path)
    defs = build_definitions(config)
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("automated_pipeline_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    run = instance.get_run_by_id(result.run_id)
    kind = DagsterEventType.RUN_SUCCESS if result.success else DagsterEventType.RUN_FAILURE
    event = instance.get_records_for_run(result.run_id, of_type=kind).records[0]
    sensor_name = "notify_on_success" if result.success else "notify_on_failure"
    sensor = defs.resolve_sensor_def(sensor_name)
    context = build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_event=event.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    )
    if not result.success:
        context = context.for_run_failure()
    sensor(context)
    return result


def test_failure_sends_one_email_and_one_slack_message(
    write_config, smtp_server, webhook_server, monkeypatch
):
    port, inbox = smtp_server
    base, posts = webhook_server
    result = _run_and_notify(_config(write_config, port, base), monkeypatch)
    assert not result.success

    assert len(inbox.messages) == 1  # one message for the run, not one per attempt
    mail = inbox.messages[0]
    assert mail["Subject"].startswith(
        f"[shop/staging] run {result.run_id[:8]} FAILED at task 'flaky'"
    )
    assert mail["To"] == "ops@example.com, ml@example.com, data-eng@example.com"  # task owner
    body = mail.get_payload(decode=True).decode()
    assert "Task 'flaky' failed after 2 attempts (connection_error)" in body
    assert f"http://dagster.example:3000/runs/{result.run_id}" in body
    assert "source unreachable on attempt 2" in body  # last log lines of the failed task
    assert "numbers" in body and "SUCCESS" in body
    assert inbox.logins == [("pipeline-bot", SECRET_PASSWORD)]

    assert len(posts) == 1
    assert posts[0]["path"] == f"/services/{WEBHOOK_TOKEN}"
    slack = posts[0]["json"]
    assert slack["channel"] == "#alerts"
    assert "FAILED at task 'flaky'" in slack["text"]
    for payload in (body, str(slack)):
        assert SECRET_PASSWORD not in payload and WEBHOOK_TOKEN not in payload


def test_success_notifies_only_channels_that_want_it(
    write_config, smtp_server, webhook_server, monkeypatch
):
    port, inbox = smtp_server
    base, posts = webhook_server
    result = _run_and_notify(_config(write_config, port, base, flaky_retries=3), monkeypatch)
    assert result.success
    assert inbox.messages[0]["To"] == "ops@example.com, ml@example.com"  # no failed owner
    assert [m["Subject"] for m in inbox.messages] == [
        f"[shop/staging] run {result.run_id[:8]} succeeded"
    ]
    assert posts == []  # slack.notify_success is false


def test_notifier_down_never_fails_and_reports_not_sent(write_config, monkeypatch):
    closed = free_port()
    path = _config(write_config, closed, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SECRET_PASSWORD)
    monkeypatch.setenv("TEST_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    config = PipelineConfig(path)
    instance = DagsterInstance.ephemeral()
    result = (
        build_definitions(config)
        .resolve_job_def("automated_pipeline_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    notice = build_notice(config, instance, instance.get_run_by_id(result.run_id))
    assert dispatch(config, notice) == {"email": False, "slack": False}


@pytest.mark.parametrize("enabled", [True, False])
def test_sensors_are_running_only_when_notifications_are_enabled(write_config, enabled):
    from dagster import DefaultSensorStatus

    path = write_config(
        f'notifications: {{enabled: {str(enabled).lower()}}}\ntasks:\n  a: {{callable: "{SAMPLE}:make_numbers"}}\n'
    )
    defs = build_definitions(PipelineConfig(path))
    expected = DefaultSensorStatus.RUNNING if enabled else DefaultSensorStatus.STOPPED
    for name in ("notify_on_success", "notify_on_failure"):
        assert defs.resolve_sensor_def(name).default_status == expected


def test_slow_task_alert_reaches_the_failure_channels(write_config, webhook_server):
    from recomart_pipeline.runtime.runner import run_task

    base, posts = webhook_server
    path = write_config(
        f"""
        monitoring: {{performance: {{slow_task_threshold_seconds: 0.000001, notify_slow_tasks: true}}}}
        notifications:
          enabled: true
          slack: {{enabled: true, webhook_url: "{base}/hook"}}
        tasks:
          numbers: {{callable: "{SAMPLE}:make_numbers"}}
        """
    )
    run_task(PipelineConfig(path), "numbers", "run-slow-1")
    assert len(posts) == 1
    assert "run run-slow: task 'numbers' is slow" in posts[0]["json"]["text"]


def test_recovered_notifier_does_not_replay_old_alerts(write_config, webhook_server, caplog):
    """The failure sensor's cursor moves past a run even when sending failed, so a notifier
    that comes back later gets only new failures."""
    from dagster import build_sensor_context

    base, posts = webhook_server
    down = f"http://127.0.0.1:{free_port()}/hook"
    body = f"""
        notifications:
          enabled: true
          slack: {{enabled: true, webhook_url: "{{url}}"}}
        tasks:
          bad: {{callable: "{SAMPLE}:bad_schema"}}
        """
    path = write_config(body.replace("{url}", down))
    instance = DagsterInstance.ephemeral()

    def tick(cursor, *, run_first: bool):
        defs = build_definitions(PipelineConfig(path))
        if run_first:
            defs.resolve_job_def("automated_pipeline_job").execute_in_process(
                instance=instance, raise_on_error=False
            )
        context = build_sensor_context(
            instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
        )
        defs.resolve_sensor_def("notify_on_failure").evaluate_tick(context)
        return context.cursor

    cursor = tick(None, run_first=False)  # the sensor starts watching
    with caplog.at_level("WARNING", logger="recomart.notify"):
        cursor = tick(cursor, run_first=True)  # a failure while the notifier is down
    assert "slack notification: attempt 1/3 failed" in caplog.text
    assert posts == []
    path.write_text(path.read_text().replace(down, f"{base}/hook"))
    tick(cursor, run_first=True)  # notifier back: only the new failure is sent
    assert len(posts) == 1
