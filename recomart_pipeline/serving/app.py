"""FastAPI app: /health, /recommendations/{user_id}, /model, /admin/reload, /metrics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.serving.state import ChampionWatcher, ServingState


def create_app(registry: Path | ModelRegistry) -> FastAPI:
    if not isinstance(registry, ModelRegistry):
        registry = ModelRegistry(registry)
    registry_dir = registry.remote.url if registry.remote else registry.root
    watcher = ChampionWatcher(registry)
    requests: Counter[tuple[str, str]] = Counter()
    app = FastAPI(title="RecoMart recommendations", version="1")

    def state_or_503() -> ServingState:
        state = watcher.current()
        if state is None:
            raise HTTPException(503, detail=f"no champion model in {registry_dir}")
        return state

    @app.get("/health")
    def health() -> dict[str, object]:
        state = state_or_503()
        requests[("health", "")] += 1
        return {"status": "ok", "model_version": state.version.version}

    @app.get("/recommendations/{user_id}")
    def recommendations(user_id: str, k: int = Query(10, ge=1, le=100)) -> dict[str, object]:
        state = state_or_503()
        strategy, items = state.recommend(user_id, k)
        requests[("recommendations", strategy)] += 1
        return {
            "user_id": user_id,
            "k": k,
            "strategy": strategy,
            "model_version": state.version.version,
            "items": items,
        }

    @app.get("/model")
    def model() -> dict[str, object]:
        state = state_or_503()
        version = state.version
        return {
            "version": version.version,
            "model_type": version.model_type,
            "metrics": version.metrics,
            "sha256": version.sha256,
            "created_at": version.created_at,
            "run_id": version.run_id,
        }

    @app.post("/admin/reload")
    def reload() -> dict[str, object]:
        state = watcher.reload()
        return {"model_version": state.version.version if state else None}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        state = watcher.current()
        lines = [
            "# TYPE recomart_serving_requests_total counter",
            *(
                f'recomart_serving_requests_total{{endpoint="{e}",strategy="{s}"}} {n}'
                for (e, s), n in sorted(requests.items())
            ),
            "# TYPE recomart_serving_model_info gauge",
            f'recomart_serving_model_info{{version="{state.version.version if state else ""}"}} 1',
            "# TYPE recomart_serving_reloads_total counter",
            f"recomart_serving_reloads_total {watcher.reloads}",
        ]
        return "\n".join(lines) + "\n"

    return app
