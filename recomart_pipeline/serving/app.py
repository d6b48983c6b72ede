"""FastAPI app: /health, /recommendations/{user_id}, /model, /metrics; POST /admin/reload.

Read-only endpoints (and /docs, /openapi.json) are open: they reveal what any client of the
recommendations sees anyway. Admin endpoints change what the service serves, so they need
the bearer token the operator configured, and without one they are disabled rather than open.

A champion that fails to load never turns into a 500: the watcher keeps the model it holds
and ``/health`` says ``degraded`` with the reason (HTTP 200 while a model answers, 503 while
none can).
"""

from __future__ import annotations

import copy
import hmac
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response, Security
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.serving.state import LOGGER, ChampionWatcher, ServingState

ADMIN_TOKEN_OPTION = (
    "serve --admin-token-env NAME (or tasks.deploy.config.service.admin_token_env: NAME), "
    "NAME being an environment variable that holds the token"
)
ADMIN_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="admin token",
    description=f"Admin endpoints need `Authorization: Bearer <token>`; set it up with {ADMIN_TOKEN_OPTION}.",
)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus the service's own logger (refused champions, swaps), so
    its records reach the same stream in the same format."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][LOGGER.name] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def admin_guard(admin_token: str | None) -> Callable[..., None]:
    """The dependency every admin route carries: the configured token, compared in constant
    time, or a refusal that says how to get in (never echoing what was sent)."""
    expected = admin_token.encode() if admin_token else None

    def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(ADMIN_BEARER)],
    ) -> None:
        if expected is None:
            raise HTTPException(
                403, detail=f"admin endpoints are disabled; enable them with {ADMIN_TOKEN_OPTION}"
            )
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(
                401,
                detail="missing admin token: send Authorization: Bearer <token>",
                headers=challenge,
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(401, detail="wrong admin token", headers=challenge)

    return require_admin


def create_app(registry: Path | ModelRegistry, admin_token: str | None = None) -> FastAPI:
    """The service for ``registry``'s champion; ``admin_token`` None disables admin endpoints."""
    if not isinstance(registry, ModelRegistry):
        registry = ModelRegistry(registry)
    registry_dir = registry.remote.url if registry.remote else registry.root
    watcher = ChampionWatcher(registry)
    requests: Counter[tuple[str, str]] = Counter()
    app = FastAPI(title="RecoMart recommendations", version="1")

    def no_model() -> str:
        problem = watcher.problem
        return (
            f"no model to serve: {problem.describe()}"
            if problem
            else f"no champion model in {registry_dir}"
        )

    def state_or_503() -> ServingState:
        state = watcher.current()
        if state is None:
            raise HTTPException(503, detail=no_model())
        return state

    def health_of(state: ServingState | None, response: Response) -> dict[str, object]:
        problem = watcher.problem
        response.status_code = 200 if state is not None else 503
        return {
            "status": "ok" if state is not None and problem is None else "degraded",
            "ready": state is not None,
            "model_version": state.version.version if state else None,
            "problem": None
            if problem is None
            else {
                "kind": problem.kind,
                "version": problem.version,
                "reason": problem.reason,
                "since": problem.since,
            },
        }

    @app.get("/health")
    def health(response: Response) -> dict[str, object]:
        """Liveness and readiness: 200 while a model answers (``status`` ``degraded`` with the
        ``problem`` when the registry's champion was refused), 503 while no model can."""
        requests[("health", "")] += 1
        return health_of(watcher.current(), response)

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

    admin = APIRouter(prefix="/admin", dependencies=[Security(admin_guard(admin_token))])

    @admin.post("/reload")
    def reload(response: Response) -> dict[str, object]:
        """Load the champion again even if its pointer did not change (after fixing its files);
        answers like /health. Needs the admin token."""
        return health_of(watcher.reload(), response)

    app.include_router(admin)

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
            "# TYPE recomart_serving_champion_refusals_total counter",
            f"recomart_serving_champion_refusals_total {watcher.refusals}",
            "# TYPE recomart_serving_degraded gauge",
            f"recomart_serving_degraded {int(watcher.problem is not None or state is None)}",
        ]
        return "\n".join(lines) + "\n"

    return app
