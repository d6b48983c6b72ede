"""Deploy: register the evaluated model, promote it when it earns it, verify the service.

When evaluation chose the baseline because no personalised model beat it
(``baseline_fallback``), the current champion is kept, or, with none, the baseline is deployed
(marked as such) so the service answers. Otherwise promotion needs the evaluation's quality
gates to have passed and (configurable) the new model to beat the champion; with ``require_approval`` it waits for a person
(``python -m recomart_pipeline approve VERSION``). After promotion a real service must report
the new version before the "service up" marker is written; otherwise the previous champion
is restored and the task fails.

``deployment`` and the marker hold no run facts (the verification URL, with its free port,
is the task's metadata ``service_url``; when it happened is in the manifest). Their
``status``/``promoted``/``champion`` depend on the registry as this run found it:
``Deployment.run_dependent`` says so, and ``reproduce`` compares the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recomart_pipeline.contract.documents import Deployment
from recomart_pipeline.contract.errors import QualityGateError, TaskError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.deployment.registry import ModelRegistry, ModelVersion
from recomart_pipeline.deployment.serving_arrays import (
    load_ranked,
    scratch_folder,
    with_serving_arrays,
)
from recomart_pipeline.deployment.verification import (
    VerificationError,
    read_admin_token,
    verify_in_child_service,
    verify_running_service,
)
from recomart_pipeline.tasks.specs.deploy import (
    EVALUATION,
    ITEM_INDEX,
    MODEL,
    REPORT_SUMMARY,
    SERVING_TOPK,
    TRAIN_IMPLICIT,
    USER_INDEX,
    Config,
)

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
# The files the model service loads next to the model, by their name in the registry.
SERVING_INPUTS = {
    "user_index.parquet": USER_INDEX,
    "item_index.parquet": ITEM_INDEX,
    "train_implicit.npz": TRAIN_IMPLICIT,
}


def registry_for(ctx: TaskContext, config: Config) -> ModelRegistry:
    if config.registry_dir:
        return ModelRegistry(ctx.resolve_project_path(config.registry_dir))
    remote = ctx.object_store.child("registry") if ctx.object_store else None
    registry = ModelRegistry(ctx.storage_root / "registry", remote)
    registry.refresh()
    return registry


def _better(new: dict[str, Any], old: dict[str, Any], metric: str) -> bool:
    a, b = new.get(metric), old.get(metric)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return True  # no comparable number on the champion: the gated candidate wins
    return a < b if metric in LOWER_IS_BETTER else a > b


def _known_user(path: Path) -> str | None:
    users = pd.read_parquet(path, columns=["user_id"])
    return str(users["user_id"].iloc[0]) if len(users) else None


def _verify(
    ctx: TaskContext, registry: ModelRegistry, version: ModelVersion, user: str | None
) -> str:
    service = ctx.config.service
    if service.mode == "none":
        return ""
    if service.mode == "url":
        try:
            token = read_admin_token(service.admin_token_env)
        except ValueError as exc:
            raise VerificationError(f"tasks.deploy.config.service.admin_token_env: {exc}") from None
        return verify_running_service(
            service.url.rstrip("/"), version.version, user, service.startup_timeout_seconds, token
        )
    return verify_in_child_service(
        registry.root,
        version.version,
        user,
        service.host,
        service.port,
        service.startup_timeout_seconds,
    )


def _with_arrays(
    ctx: TaskContext[Config], serving: dict[str, Path], scratch: Path, data_hash: str
) -> dict[str, Path]:
    """The serving files plus every user's precomputed top-K, which the service answers from.
    A model they cannot be built from is registered without them: the service then refuses
    it too, and verification rolls the promotion back with the service's own reason.

    The top-K is inference's ranking when this task depends on inference and that ranking
    was made with this model and training matrix (the same ``recommend``: the same arrays);
    otherwise every user is ranked here."""
    try:
        ranked = (
            load_ranked(
                ctx.input(SERVING_TOPK),
                model_sha256=ctx.document(EVALUATION).model_sha256,
                seen_sha256=data_hash,
            )
            if ctx.has_input(SERVING_TOPK)
            else None
        )
        if ranked is None:
            ctx.logger.info("ranking every user for the serving arrays")
        return with_serving_arrays(ctx.input(MODEL), serving, scratch, ranked=ranked)
    except TaskError as exc:
        ctx.logger.warning(f"cannot precompute the serving arrays: {exc}")
        return serving


def run(ctx: TaskContext[Config]) -> TaskResult:
    config = ctx.config
    evaluation = ctx.document(EVALUATION)
    fallback = evaluation.baseline_fallback  # no personalised model beat the baseline
    if not evaluation.passed and not fallback:
        failed = [g.name for g in evaluation.gates if g.blocking()]
        raise QualityGateError(
            f"the evaluated model failed its quality gates ({', '.join(failed)}); it is not deployed",
            hint="see the evaluation asset's checks",
        )
    registry = registry_for(ctx, config)
    serving = {name: ctx.input(declared) for name, declared in SERVING_INPUTS.items()}
    best = evaluation.best_model
    metrics = evaluation.best_metrics
    data_hash = sha256_file(serving["train_implicit.npz"])
    with scratch_folder() as scratch:
        # every user's top-K, precomputed: the service answers from these arrays
        version, created = registry.register(
            ctx.input(MODEL),
            _with_arrays(ctx, serving, Path(scratch), data_hash),
            model_type=evaluation.model_type,
            metrics=metrics,
            data_hash=data_hash,
            run_id=ctx.run_id,
            config={
                "best_model": best,
                "params": evaluation.params,
                "baseline_fallback": fallback,
            },
        )
    ctx.logger.info(f"{'registered' if created else 'already registered'} model {version.version}")
    champion = registry.champion()
    metric = config.comparison_metric or evaluation.selection_metric
    user = _known_user(serving["user_index.parquet"])
    url = ""
    if champion is not None and champion.version == version.version:
        status = "already_champion"
    elif fallback and champion is not None:
        status = "kept_champion"  # a personalised champion beats serving the baseline
        ctx.logger.warning(
            f"no personalised model beat the baseline: keeping champion {champion.version}"
        )
    elif (
        config.require_better_than_champion
        and champion is not None
        and not _better(metrics, champion.metrics, metric)
    ):
        status = "kept_champion"
    elif config.require_approval:
        registry.request_approval(version.version, f"{metric}={metrics.get(metric)}")
        status = "awaiting_approval"
    else:
        previous = champion
        registry.promote(version.version)
        try:
            url = _verify(ctx, registry, version, user)
        except VerificationError as exc:
            if previous is not None:
                registry.promote(previous.version, reason=f"rollback: {exc}")
            restored = previous.version if previous else "no champion"
            raise VerificationError(
                f"deploy verification failed: {exc}; rolled back to {restored}"
            ) from exc
        status = "promoted"
    serving_version = registry.champion()
    report_path = (
        ctx.document(REPORT_SUMMARY).report_path if ctx.has_input(REPORT_SUMMARY) else None
    )
    deployment = Deployment(
        status=status,
        version=version.version,
        champion=serving_version.version if serving_version else None,
        promoted=status == "promoted",
        comparison_metric=metric,
        metrics=metrics,
        registry=str(registry.root),
        report_path=report_path,
        baseline_fallback=fallback and status == "promoted",
    )
    deployment_path = ctx.write_document("deployment.json", deployment)
    outputs = {"deployment": deployment_path}
    if status in ("promoted", "already_champion"):
        marker = ctx.output_path("service_up.txt")
        marker.write_text(
            f"service up\nversion: {serving_version.version if serving_version else ''}\n"
        )
        outputs["service_marker"] = marker
    ctx.logger.info(
        f"deploy: {status} (candidate {version.version}, champion {deployment.champion})"
    )
    return TaskResult(
        outputs=outputs,
        metrics={"promoted": int(status == "promoted")},
        metadata={
            "deploy_status": status,
            "candidate_version": version.version,
            "champion": deployment.champion,
            "service_url": url,
        },
    )
