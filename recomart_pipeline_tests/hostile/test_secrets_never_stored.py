"""Secrets never stored, whichever way they were given (issue 14, point 4).

A real CLI run gets a secret by every route at once: typed into the file, from the
environment (``${VAR}``, inside a webhook URL), with ``--set``, and as the password inside
an ingestion source URL. Afterwards every byte the run left behind (storage, manifests,
logs, metrics, circuit-breaker state, the Dagster home with its SQLite run and event
storage) and every notification is searched for each planted value.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.contract.redaction import REDACTED, strip_url_credentials
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import project_env
from recomart_pipeline_tests.notify.conftest import free_port, smtp_server, webhook_server

__all__ = ["smtp_server", "webhook_server"]

IN_FILE = "file-secret-0c4f7a91"
FROM_ENV = "env-secret-5b2e8d13"
FROM_SET = "smtp-secret-pw"  # the password the test SMTP server accepts
IN_URL = "url-password-9e7a3c55"


def test_url_credentials_are_masked_wherever_they_are_printed():
    text = "cannot download https://reader:s3cr3t@example.com/x.csv: refused (ftp://a@b/c)"
    assert strip_url_credentials(text) == (
        f"cannot download https://{REDACTED}@example.com/x.csv: refused (ftp://{REDACTED}@b/c)"
    )


def test_a_secret_given_with_set_is_masked_in_the_recorded_overrides(write_config):
    path = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(
        path,
        overrides=[
            f"notifications.email.password={FROM_SET}",
            "tasks.numbers.config.count=3",
        ],
    )
    assert config.safe_overrides == [
        f"notifications.email.password={REDACTED}",
        "tasks.numbers.config.count=3",
    ]
    assert FROM_SET not in str(config.to_dict())


@pytest.mark.slow
def test_no_file_and_no_message_holds_a_planted_secret(
    write_config, smtp_server, webhook_server, monkeypatch
):
    smtp_port, inbox = smtp_server
    base, posts = webhook_server
    closed = free_port()  # nothing listens: the download fails and the run fails
    path = write_config(
        f"""
        pipeline: {{name: leaky}}
        notifications:
          enabled: true
          slack: {{enabled: true, webhook_url: "{base}/hook?token=${{HOOK_TOKEN}}"}}
          email:
            enabled: true
            smtp_server: 127.0.0.1
            smtp_port: {smtp_port}
            security: plain
            username: pipeline
            recipients: [ops@example.com]
        execution: {{continue_on_error: true}}
        tasks:
          secretive:
            callable: "{SAMPLE}:uses_secret"
            config: {{api_token: {IN_FILE}}}
          ingestion:
            retry_count: 0
            config:
              source:
                interactions:
                  path: "http://reader:{IN_URL}@127.0.0.1:{closed}/interactions.csv"
                items: null
                users: null
              circuit_breaker: {{failure_threshold: 1}}
        """
    )
    project = path.parent
    env = project_env(project)
    env["HOOK_TOKEN"] = FROM_ENV
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "run",
            "--select",
            "secretive",
            "ingestion",
            "--set",
            f"notifications.email.password={FROM_SET}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert (project / "storage" / "circuits").exists()  # the breaker recorded the failure

    assert posts and inbox.messages, "the failure notice went out by webhook and by email"
    planted = [IN_FILE, FROM_ENV, FROM_SET, IN_URL]
    leaks = [
        (str(file.relative_to(project)), secret)
        for file in project.rglob("*")
        if file.is_file() and file != path  # the config file itself holds IN_FILE
        for secret in planted
        if secret.encode() in file.read_bytes()
    ]
    leaks += [("stdout/stderr", s) for s in planted if s in result.stdout + result.stderr]
    leaks += [("webhook", s) for s in planted for post in posts if s in str(post["json"])]
    leaks += [("email", s) for s in planted for m in inbox.messages if s in m.as_string()]
    assert not leaks, leaks
    assert REDACTED in (project / "logs" / "ingestion.log").read_text()
