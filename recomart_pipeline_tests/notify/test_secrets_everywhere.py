"""A secret planted in the environment never shows up in logs, manifests, metrics, the
Dagster event log (materialization metadata, log messages) or a notification."""

from __future__ import annotations

from dagster import DagsterInstance

from recomart_pipeline import PipelineConfig
from recomart_pipeline.notify import dispatch
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.notifications import build_notice
from recomart_pipeline_tests.conftest import SAMPLE

SECRET = "planted-secret-7d1e0c9f"


def test_planted_secret_is_redacted_everywhere(write_config, monkeypatch, webhook_server):
    base, posts = webhook_server
    monkeypatch.setenv("SAMPLE_SECRET", SECRET)
    path = write_config(
        f"""
        notifications:
          enabled: true
          slack: {{enabled: true, webhook_url: "{base}/hook?token=${{SAMPLE_SECRET}}", notify_success: true}}
        tasks:
          leaky: {{callable: "{SAMPLE}:leaks_secret_but_succeeds"}}
          failing: {{callable: "{SAMPLE}:leaks_secret"}}
        execution: {{continue_on_error: true}}
        """
    )
    config = PipelineConfig(path)
    instance = DagsterInstance.ephemeral()
    result = (
        build_definitions(config)
        .resolve_job_def("automated_pipeline_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    dispatch(config, build_notice(config, instance, instance.get_run_by_id(result.run_id)))
    assert posts, "the notification was sent"
    texts = [str(post["json"]) for post in posts]  # the body; the URL itself is the secret
    for folder in ("logs", "metrics", "storage"):
        for file in (config.project_root / folder).rglob("*"):
            if file.is_file() and file.suffix in (".log", ".csv", ".json", ".prom", ".txt"):
                texts.append(file.read_text(errors="replace"))
    for entry in instance.all_logs(result.run_id):
        texts.append(entry.user_message or "")
        event = entry.dagster_event
        if event is not None and event.event_specific_data is not None:
            texts.append(repr(event.event_specific_data))
    leaks = [t[:200] for t in texts if SECRET in t]
    assert not leaks, leaks
    assert any("**********" in t for t in texts)
