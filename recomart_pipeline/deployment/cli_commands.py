"""CLI commands around the registry and the service: serve, approve, rollback, models."""

from __future__ import annotations

import argparse

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.deployment.registry import ModelRegistry, RegistryError
from recomart_pipeline.runtime.object_store import object_store_for


def registry_for_config(config: PipelineConfig) -> ModelRegistry:
    """The deploy task's registry (its ``registry_dir``), else <storage>/registry — in the
    object store when storage is one — brought up to date."""
    for name, spec in config.specs.items():
        if spec.reference == "builtin:deploy":
            configured = getattr(config.task_config(name), "registry_dir", None)
            if configured:
                return ModelRegistry(config.resolve_path(configured))
    remote = object_store_for(config)
    registry = ModelRegistry(
        config.storage_root / "registry", remote.child("registry") if remote else None
    )
    registry.refresh()
    return registry


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="pipeline config (default: $PIPELINE_CONFIG or ./pipeline_config.yaml)"
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from recomart_pipeline.serving.app import create_app

    registry = registry_for_config(PipelineConfig(args.config))
    where = registry.remote.url if registry.remote else registry.root
    print(f"serving the champion of {where} on http://{args.host}:{args.port}")
    uvicorn.run(create_app(registry), host=args.host, port=args.port, log_level="info")
    return 0


def add_approve_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("version", help="version awaiting approval, e.g. v0003")


def run_approve(args: argparse.Namespace) -> int:
    registry = registry_for_config(PipelineConfig(args.config))
    try:
        version = registry.approve(args.version)
    except RegistryError as exc:
        print(f"approve: {exc}")
        return 1
    print(
        f"approved and promoted {version.version}; a running service picks it up on its next request"
    )
    return 0


def add_rollback_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)


def run_rollback(args: argparse.Namespace) -> int:
    registry = registry_for_config(PipelineConfig(args.config))
    try:
        previous, restored = registry.rollback()
    except RegistryError as exc:
        print(f"rollback: {exc}")
        return 1
    print(f"rolled back: champion {previous} -> {restored.version}")
    return 0


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)


def run_models(args: argparse.Namespace) -> int:
    registry = registry_for_config(PipelineConfig(args.config))
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
    return 0
