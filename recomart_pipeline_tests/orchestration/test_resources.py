"""The pipeline's connections are Dagster resources built from the YAML: values as written,
secrets by their environment variable's name (never their value), required by the assets
that use them, and what a run sets on them in the launchpad is what its tasks use."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import ComponentTree, Definitions

from recomart_pipeline import PipelineConfig
from recomart_pipeline.config.schema import EmailSettings
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.component import RecomartPipelineComponent
from recomart_pipeline.orchestration.resources import (
    ModelRegistryResource,
    SmtpResource,
    StorageResource,
)
from recomart_pipeline.orchestration.run_config import config_for_run
from recomart_pipeline.orchestration.source_assets import source_key
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import REPO_ROOT

SMTP_SECRET = "smtp-pw-4c1f9e"
KEY_SECRET = "aws-secret-0b7d2a"
TOKEN = "hook-token-93e1"


def _resource_defaults(defs: Definitions) -> dict[str, dict]:
    """Each top-level resource's config as Dagster stores it (snapshots, the UI)."""
    resources = defs.get_repository_def().get_top_level_resources()
    return {key: r.config_schema.as_field().default_value for key, r in resources.items()}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_SECRET)
    monkeypatch.setenv("TEST_SECRET_KEY", KEY_SECRET)
    monkeypatch.setenv("TEST_HOOK_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_SMTP_HOST", "mail.internal")


@pytest.fixture
def connected(write_config, secret_env) -> PipelineConfig:
    return PipelineConfig(
        write_config(
            f"""
            storage:
              base_dir: s3://bucket/pipelines
              object_store:
                endpoint_url: http://127.0.0.1:9000
                access_key_id: AKIALITERALINFILE
                secret_access_key: ${{TEST_SECRET_KEY}}
            notifications:
              email:
                smtp_server: ${{TEST_SMTP_HOST}}
                smtp_port: 2525
                username: alerts
                password: ${{TEST_SMTP_PASSWORD}}
                recipients: [ops@example.com]
              slack:
                webhook_url: "https://hooks.example.com/x?token=${{TEST_HOOK_TOKEN}}"
            tracking:
              mlflow: {{tracking_uri: "http://user:pw-in-url@127.0.0.1:5000"}}
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
            """
        )
    )


def test_resources_hold_the_yaml_values_and_name_the_variables_of_secrets(connected):
    defaults = _resource_defaults(build_definitions(connected))
    assert set(defaults) >= {"storage", "smtp", "slack", "mlflow"}
    smtp = defaults["smtp"]
    assert smtp["password"] == {"env": "TEST_SMTP_PASSWORD"}
    assert smtp["smtp_server"] == {"env": "TEST_SMTP_HOST"}  # any value taken whole
    assert (smtp["smtp_port"], smtp["username"]) == (2525, "alerts")
    assert smtp["recipients"] == ["ops@example.com"]
    assert defaults["storage"]["secret_access_key"] == {"env": "TEST_SECRET_KEY"}
    assert defaults["storage"]["base_dir"] == "s3://bucket/pipelines"


def test_a_secret_written_in_the_file_or_inside_a_value_is_left_out(connected):
    defaults = _resource_defaults(build_definitions(connected))
    assert defaults["storage"].get("access_key_id") is None  # a literal key in the file
    assert defaults["slack"].get("webhook_url") is None  # the token is part of the URL
    assert defaults["mlflow"].get("tracking_uri") is None  # credentials in the URL
    shown = repr(defaults)
    for secret in (SMTP_SECRET, KEY_SECRET, TOKEN, "AKIALITERALINFILE", "pw-in-url"):
        assert secret not in shown
    # the run still has them, from the YAML
    assert SmtpResource.from_config(connected).settings(connected) == (
        connected.settings.notifications.email
    )


def test_the_adapters_hand_the_runtime_its_plain_settings(connected, secret_env):
    smtp = SmtpResource.from_config(connected)
    settings = smtp.settings(connected)
    assert isinstance(settings, EmailSettings)
    assert settings.password is not None and settings.password.get_secret_value() == SMTP_SECRET
    assert settings.smtp_server == "mail.internal"
    changed = SmtpResource(smtp_port=587, recipients=["oncall@example.com"]).settings(connected)
    assert (changed.smtp_port, changed.recipients) == (587, ["oncall@example.com"])
    assert changed.username == "alerts"  # unset fields keep the YAML's values
    with pytest.raises(Exception, match="smtp_port"):
        SmtpResource(smtp_port=70000).settings(connected)  # the YAML's rules apply
    local = StorageResource(base_dir="elsewhere")
    assert local.object_store(connected) is None
    assert local.apply(connected).storage_root == connected.project_root / "elsewhere"


def test_every_task_asset_requires_the_resources_it_uses():
    config = PipelineConfig(REPO_ROOT / "pipeline_config.yaml")
    defs = build_definitions(config)
    required = {
        key.to_user_string(): asset.required_resource_keys
        for asset in defs.assets or []
        for key in asset.keys
        if key != source_key("ingestion")  # observes files, needs no resource
    }
    assert all({"storage", "smtp", "slack"} <= keys for keys in required.values())
    assert {task for task, keys in required.items() if "mlflow" in keys} == {
        "training",
        "evaluation",
        "report",
        "deploy",
    }
    assert {task for task, keys in required.items() if "model_registry" in keys} == {"deploy"}
    registry = ModelRegistryResource.from_config(config).registry(config)
    assert registry.root == config.storage_root / "registry"


def test_the_component_registers_the_same_resources(tmp_path, secret_env):
    (tmp_path / "defs.yaml").write_text(
        "type: recomart_pipeline.orchestration.component.RecomartPipelineComponent\n"
        "attributes:\n"
        '  notifications: {email: {password: "${TEST_SMTP_PASSWORD}"}}\n'
        f'  tasks: {{numbers: {{callable: "{SAMPLE}:make_numbers"}}}}\n'
    )
    component = RecomartPipelineComponent(tmp_path / "defs.yaml")
    defs = component.build_defs(ComponentTree.for_test().load_context)
    defaults = _resource_defaults(defs)
    assert set(defaults) >= {"storage", "smtp", "slack", "mlflow"}
    assert defaults["smtp"]["password"] == {"env": "TEST_SMTP_PASSWORD"}


def test_launchpad_resource_values_become_the_runs_settings(connected, secret_env, monkeypatch):
    monkeypatch.setenv("OTHER_PASSWORD", "other-pw-77")
    run_config = {
        "resources": {
            "smtp": {"config": {"smtp_port": 465, "password": {"env": "OTHER_PASSWORD"}}},
            "storage": {"config": {"cache_dir": "cache2"}},
        }
    }
    run = config_for_run(connected, run_config)
    email = run.settings.notifications.email
    assert email.smtp_port == 465
    assert email.password is not None and email.password.get_secret_value() == "other-pw-77"
    assert email.smtp_server == "mail.internal" and email.username == "alerts"
    assert run.settings.storage.cache_dir == "cache2"
    assert "other-pw-77" not in " ".join(run.safe_overrides)
    assert config_for_run(connected, {}).overrides == []


def test_a_bad_launchpad_resource_value_fails_with_the_yaml_rule(connected):
    with pytest.raises(Exception, match=r"notifications\.email\.smtp_port"):
        config_for_run(connected, {"resources": {"smtp": {"config": {"smtp_port": 0}}}})


def test_secret_values_reach_no_job_snapshot(connected):
    """Run storage keeps each run's job snapshot, config schema and defaults included."""
    from dagster._core.snap import JobSnap
    from dagster._serdes import serialize_value

    job = build_definitions(connected).resolve_job_def("automated_pipeline_job")
    stored = serialize_value(JobSnap.from_job_def(job))
    assert "TEST_SMTP_PASSWORD" in stored  # the variable's name is
    for secret in (SMTP_SECRET, KEY_SECRET, TOKEN, "AKIALITERALINFILE", "pw-in-url"):
        assert secret not in stored


def test_resources_need_nothing_unset(write_config, monkeypatch):
    """``${VAR:-}`` with VAR unset is the default, not an environment variable the location
    needs: naming it would fail every run for a variable nobody set."""
    monkeypatch.delenv("UNSET_SMTP_PASSWORD", raising=False)
    config = PipelineConfig(
        write_config(
            f"""
            notifications: {{email: {{password: "${{UNSET_SMTP_PASSWORD:-}}"}}}}
            tasks:
              numbers: {{callable: "{SAMPLE}:make_numbers"}}
            """
        )
    )
    defs = build_definitions(config)
    assert _resource_defaults(defs)["smtp"].get("password") is None
    result = defs.resolve_job_def("automated_pipeline_job").execute_in_process(raise_on_error=False)
    assert result.success


def test_a_task_materializes_with_its_resources(sample_project: Path):
    config = PipelineConfig(sample_project)
    result = (
        build_definitions(config)
        .resolve_job_def("automated_pipeline_job")
        .execute_in_process(
            run_config={"resources": {"storage": {"config": {"base_dir": "storage_b"}}}}
        )
    )
    assert result.success
    assert (config.project_root / "storage_b").is_dir()
    assert not (config.project_root / "storage").exists()
