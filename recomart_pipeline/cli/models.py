"""CLI commands around the registry and the service: serve, approve, rollback, models.

The registry itself is ``recomart_pipeline.deployment.registry``; the service is
``recomart_pipeline.serving``. uvicorn and the FastAPI app are imported only by ``serve``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from recomart_pipeline.cli.options import EXIT_FAILED, EXIT_OK, config_option
from recomart_pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from pydantic import BaseModel

    from recomart_pipeline.deployment.registry import ModelRegistry


def _deploy_config(config: PipelineConfig) -> BaseModel | None:
    """The config of the pipeline's deploy task, which also describes the service."""
    for name, spec in config.specs.items():
        if spec.reference == "builtin:deploy":
            return config.task_config(name)
    return None


def registry_for_config(config: PipelineConfig) -> ModelRegistry:
    """The deploy task's registry (its ``registry_dir``), else <storage>/registry — in the
    object store when storage is one — brought up to date."""
    from recomart_pipeline.deployment.registry import ModelRegistry
    from recomart_pipeline.runtime.object_store import object_store_for

    configured = getattr(_deploy_config(config), "registry_dir", None)
    if configured:
        return ModelRegistry(config.resolve_path(configured))
    remote = object_store_for(config)
    registry = ModelRegistry(
        config.storage_root / "registry", remote.child("registry") if remote else None
    )
    registry.refresh()
    return registry


CONFIG_ENV = "RECOMART_SERVE_CONFIG"


def serve_app() -> object:
    """The app of ``serve``, built in each worker process from the config the parent named
    (uvicorn's workers are fresh processes: they cannot be handed an app object)."""
    import os
    from pathlib import Path

    from recomart_pipeline.deployment.verification import read_admin_token
    from recomart_pipeline.serving.app import TOKEN_ENV_ENV, create_app

    config = PipelineConfig(Path(os.environ[CONFIG_ENV]))
    token = read_admin_token(os.environ.get(TOKEN_ENV_ENV) or None)
    return create_app(registry_for_config(config), admin_token=token)


@click.command("serve")
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=8000, show_default=True, help="port to listen on")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="worker processes sharing the port; they share the memory-mapped top-K arrays",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="log every request; off, the service answers more requests per second "
    "(a reverse proxy in front usually logs them anyway)",
)
@click.option(
    "--admin-token-env",
    metavar="NAME",
    help="environment variable holding the bearer token POST /admin/reload needs "
    "(default: tasks.deploy.config.service.admin_token_env); without one, admin is disabled",
)
def serve(
    config: PipelineConfig,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    admin_token_env: str | None,
) -> int:
    """serve the champion model over HTTP (FastAPI + uvicorn)"""
    from recomart_pipeline.deployment.verification import read_admin_token
    from recomart_pipeline.serving.server import TOKEN_ENV_ENV, run_server

    if admin_token_env is None:
        service = getattr(_deploy_config(config), "service", None)
        admin_token_env = getattr(service, "admin_token_env", None)
    try:
        token = read_admin_token(admin_token_env)
    except ValueError as exc:
        print(f"serve: {exc}")
        return EXIT_FAILED
    registry = registry_for_config(config)
    where = registry.remote.url if registry.remote else registry.root
    print(
        f"serving the champion of {where} on http://{host}:{port}"
        + (f" with {workers} worker processes" if workers > 1 else ""),
        flush=True,
    )
    print(
        f"admin endpoints need the bearer token in ${admin_token_env}"
        if token
        else "admin endpoints are disabled (enable them with --admin-token-env NAME)",
        flush=True,
    )
    run_server(
        "recomart_pipeline.cli.models:serve_app",
        {CONFIG_ENV: str(config.path.resolve()), TOKEN_ENV_ENV: admin_token_env or ""},
        host,
        port,
        workers,
        "info",
        access_log,
    )
    return EXIT_OK


@click.command("approve")
@click.argument("version")
@config_option
def approve(config: PipelineConfig, version: str) -> int:
    """approve a model version awaiting approval (promotes it)

    VERSION is the version awaiting approval, e.g. v0003.
    """
    from recomart_pipeline.deployment.registry import RegistryError

    registry = registry_for_config(config)
    try:
        approved = registry.approve(version)
    except RegistryError as exc:
        print(f"approve: {exc}")
        return EXIT_FAILED
    print(
        f"approved and promoted {approved.version}; a running service picks it up within a second"
    )
    return EXIT_OK


@click.command("rollback")
@config_option
def rollback(config: PipelineConfig) -> int:
    """restore the previous champion model"""
    from recomart_pipeline.deployment.registry import RegistryError

    registry = registry_for_config(config)
    try:
        previous, restored = registry.rollback()
    except RegistryError as exc:
        print(f"rollback: {exc}")
        return EXIT_FAILED
    print(f"rolled back: champion {previous} -> {restored.version}")
    return EXIT_OK


@click.command("models")
@config_option
def models(config: PipelineConfig) -> int:
    """list registered model versions and the champion"""
    registry = registry_for_config(config)
    champion = registry.champion()
    pending = {p["version"] for p in registry.pending()}
    for version in registry.list_versions():
        mark = (
            "champion"
            if champion and champion.version == version.version
            else ("awaiting approval" if version.version in pending else "")
        )
        metrics = ", ".join(
            f"{k}={v:.4f}" for k, v in version.metrics.items() if isinstance(v, float)
        )
        print(f"{version.version}  {version.model_type:<28} {mark:<18} {metrics}")
    return EXIT_OK
