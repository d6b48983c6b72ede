"""FastAPI app: /health, /ready, /recommendations/{user_id}, POST /recommendations, /model,
/metrics; POST /admin/reload.

Read-only endpoints (and /docs, /openapi.json) are open: they reveal what any client of the
recommendations sees anyway. Admin endpoints change what the service serves, so they need
the bearer token the operator configured, and without one they are disabled rather than open.

A champion that fails to load never turns into a 500: the watcher keeps the model it holds
and ``/health`` says ``degraded`` with the reason (HTTP 200 while a model answers, 503 while
none can).

The request path is built for throughput: endpoints are ``async`` and run on the event loop
(no thread-pool hop), read the state the background watcher swapped in (no ``stat``, no
lock), answer known users from the memory-mapped top-K arrays and write their JSON directly
(no response-model validation); ``GET /recommendations/{user_id}`` is answered by a thin ASGI
layer in front of the framework (``RecommendationsFastPath``). Only live scoring (``k`` above the precomputed K, or
``exclude``) and the batch endpoint leave the loop for a worker thread.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Body, FastAPI, HTTPException, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.serving.server import REGISTRY_ENV, TOKEN_ENV_ENV, log_config, run_server
from recomart_pipeline.serving.state import (
    LOGGER,
    PROBE_K,
    ChampionWatcher,
    ServingState,
    printable,
)

__all__ = [
    "REGISTRY_ENV",
    "TOKEN_ENV_ENV",
    "app_from_env",
    "create_app",
    "log_config",
    "run_server",
]

ADMIN_TOKEN_OPTION = (
    "serve --admin-token-env NAME (or tasks.deploy.config.service.admin_token_env: NAME), "
    "NAME being an environment variable that holds the token"
)
ADMIN_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="admin token",
    description=f"Admin endpoints need `Authorization: Bearer <token>`; set it up with {ADMIN_TOKEN_OPTION}.",
)
MAX_K = 1000  # above the precomputed K a request is scored live
MAX_EXCLUDE = 1000
MAX_BATCH_USERS = 10_000
# (endpoint, strategy/source) of /metrics' request counter
REQUEST_LABELS = (
    ("health", ""),
    ("recommendations", "personalized/precomputed"),
    ("recommendations", "personalized/live"),
    ("recommendations", "popular/precomputed"),
    ("batch", ""),
)


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


class Recommended(BaseModel):
    item_id: str
    score: float | None = Field(description="the model's score; null for popular items")


class Recommendations(BaseModel):
    user_id: str
    k: int
    strategy: str = Field(description="personalized (a known user) or popular (unknown)")
    source: str = Field(description="precomputed (the version's top-K arrays) or live")
    model_version: str
    items: list[Recommended]


class BatchRequest(BaseModel):
    user_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH_USERS)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_EXCLUDE)


class BatchResults(BaseModel):
    k: int
    model_version: str
    results: list[Recommendations]


def _json(payload: object, status_code: int = 200) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type="application/json",
    )


def _answer_json(
    state: ServingState, user_id: str, k: int, exclude: list[str]
) -> tuple[bytes, str]:
    """One user's answer as JSON, rendered without building per-item objects, and its
    ``strategy/source`` (the metrics label)."""
    answer = state.recommend(user_id, k, exclude)
    body = (
        f'{{"user_id":{json.dumps(user_id)},"k":{k},"strategy":"{answer.strategy}",'
        f'"source":"{answer.source}","model_version":"{state.version.version}",'
        f'"items":{answer.items_json()}}}'
    ).encode()
    return body, f"{answer.strategy}/{answer.source}"


def _invalid(loc: str, message: str, value: object) -> tuple[int, bytes]:
    """A 422 shaped like FastAPI's own validation errors."""
    detail = [{"type": "value_error", "loc": ["query", loc], "msg": message, "input": value}]
    return 422, json.dumps({"detail": detail}).encode()


class RecommendationsFastPath:
    """ASGI middleware answering ``GET /recommendations/{user_id}`` itself; every other
    request goes on to the FastAPI app (which also declares and documents the route).

    Per request, FastAPI's parameter validation, routing, dependency resolution and
    exception-middleware layers cost more than the answer itself (a row of an array), so the
    hot path skips them: it reads the path and query string from the ASGI scope and sends
    the pre-rendered JSON in two messages. Each answer carries the time the service spent
    on it (W3C ``Server-Timing: app;dur=<ms>``, shown by browsers' developer tools and kept
    by proxies' logs): what a request cost here, apart from the network and the client.
    """

    PREFIX = "/recommendations/"

    def __init__(
        self,
        app: ASGIApp,
        answer: Callable[[str, str, list[str], bool], Awaitable[tuple[int, bytes]]],
    ) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(self.PREFIX)
            or "/" in path[len(self.PREFIX) :]
            or len(path) == len(self.PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_k, excluded = "10", []
        query = scope.get("query_string", b"")
        if query:
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if key == "k":
                    raw_k = value  # the last one wins, as in Starlette's QueryParams
                elif key == "exclude":
                    excluded.append(value)
        status, body = await self.answer(
            path[len(self.PREFIX) :], raw_k, excluded, WARM_UP_SCOPE in scope
        )
        spent = b"app;dur=%.3f" % ((time.perf_counter() - started) * 1000)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"server-timing", spent),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


RECOMMENDATION_PARAMETERS = [
    {
        "name": "k",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
        "description": "how many items; above the version's precomputed K they are scored live",
    },
    {
        "name": "exclude",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_EXCLUDE},
        "style": "form",
        "explode": True,
        "description": "item ids not to recommend (repeat the parameter); scored live",
    },
]


# Marks the readiness probe's own requests in their ASGI scope: counted apart from traffic.
WARM_UP_SCOPE = "recomart.warm_up"
# A user no version knows (ids read from CSV or parquet sources hold no NUL in practice).
UNKNOWN_USER = "\x00ready-probe-unknown-user"


class RequestPathFailed(Exception):
    """A probe request through the app did not answer what the model answers."""


# Known users, spread over the id order, whose requests the readiness probe also sends. In
# one process, right after probes for the probe user alone, a request for another known user
# took 1.6x the median of the next ones, settling over about five users (measured in-process,
# 50-60 us against 32-35): answers for users never asked about (new ids to look up, new
# item ids and scores to render) run colder than the same user's again. After requests for
# 16 different users, the first one costs what the next ones do.
SPREAD_USERS = 16


def probe_requests(state: ServingState) -> list[tuple[str, int, list[str]]]:
    """(user, k, exclude) of the requests the readiness probe sends through the app: the
    probe user scored live (excluding an item of the catalogue sends a request there
    whatever its ``k``), an unknown user, ``SPREAD_USERS`` known users spread over the id
    order, and last the commonest request, the probe user from the precomputed arrays —
    every path a GET takes, for many users, the most frequent one freshest."""
    k = min(PROBE_K, state.k) or 1
    user = state.probe.get("user_id")
    if not (isinstance(user, str) and user and "/" not in user):  # no GET can name it
        return [(UNKNOWN_USER, k, [])]
    requests: list[tuple[str, int, list[str]]] = []
    if state.arrays.n_items:
        item = state.arrays.item_ids[0].decode("utf-8", "surrogatepass")
        requests.append((user, k, [item]))
    requests.append((UNKNOWN_USER, k, []))
    requests += [(known, k, []) for known in spread_users(state, SPREAD_USERS)]
    return [*requests, (user, k, [])]


def spread_users(state: ServingState, count: int) -> list[str]:
    """Up to ``count`` known user ids at evenly spaced positions of the sorted ids: those a
    GET can name (valid UTF-8, not empty, no ``/``)."""
    ids = state.arrays.user_ids
    users = []
    for position in sorted({(i * ids.shape[0]) // count for i in range(count)}):
        try:
            user = ids[position].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if user and "/" not in user:
            users.append(user)
    return users


async def _call(app: ASGIApp, user_id: str, k: int, exclude: list[str]) -> tuple[int, bytes]:
    """``GET /recommendations/{user_id}`` sent through ``app`` in-process: (status, body)."""
    path = f"/recommendations/{user_id}"
    query = urlencode([("k", k), *(("exclude", item) for item in exclude)])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"ready-probe")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        WARM_UP_SCOPE: True,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), 0)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def warm_request_path(app: ASGIApp, state: ServingState) -> dict[str, object]:
    """Send ``probe_requests`` through the whole app (middleware, routing, rendering; the
    live ones through the thread pool, as a client's) and check each answer is the one the
    model gives. Run before the port opens and on every ``/ready``: the code and data a
    request runs on were then just used, so the first client request after ``/ready`` costs
    what the next ones do. Raises ``RequestPathFailed``."""
    checked, users = 0, set()
    for user_id, k, exclude in probe_requests(state):
        status, body = await _call(app, user_id, k, exclude)
        if status != 200:
            raise RequestPathFailed(
                f"GET /recommendations/{user_id!r}?k={k} answered {status}: "
                f"{printable(body.decode('utf-8', 'replace'), 200)}"
            )
        if json.loads(body).get("model_version") != state.version.version:
            continue  # a new champion was swapped in meanwhile: its load verified it
        if exclude or k > state.k:  # scored live: off the loop, as the request was
            expected, _ = await run_in_threadpool(_answer_json, state, user_id, k, exclude)
        else:
            expected, _ = _answer_json(state, user_id, k, exclude)
        if body != expected:
            raise RequestPathFailed(
                f"GET /recommendations/{user_id!r}?k={k} through the app differs from the "
                "model's own answer"
            )
        checked += 1
        users.add(user_id)
    return {"requests": checked, "users": len(users), "k": min(PROBE_K, state.k) or 1}


def create_app(
    registry: Path | ModelRegistry,
    admin_token: str | None = None,
    *,
    poll_seconds: float | None = None,
) -> FastAPI:
    """The service for ``registry``'s champion; ``admin_token`` None disables admin endpoints.

    The champion is loaded (and verified and warmed) before the server accepts connections;
    later champions are noticed by the watcher's timer every ``poll_seconds``."""
    if not isinstance(registry, ModelRegistry):
        registry = ModelRegistry(registry)
    registry_dir = registry.remote.url if registry.remote else registry.root
    watcher = (
        ChampionWatcher(registry)
        if poll_seconds is None
        else ChampionWatcher(registry, poll_seconds=poll_seconds)
    )
    # every label present from the start: a request adds to a count, never inserts a key
    requests: Counter[tuple[str, str]] = Counter(dict.fromkeys(REQUEST_LABELS, 0))
    probes: Counter[tuple[str, str]] = Counter(dict.fromkeys(REQUEST_LABELS, 0))  # /ready's

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(watcher.current)
        state = watcher.state
        if state is not None:
            try:  # the framework builds its middleware stack on the first call, too
                await warm_request_path(app, state)
            except Exception:  # /ready reports it; the service still starts
                LOGGER.exception("the request path failed on the probe requests")
        watcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(watcher.stop)

    app = FastAPI(title="RecoMart recommendations", version="1", lifespan=lifespan)
    app.state.watcher = watcher

    def no_model() -> str:
        problem = watcher.problem
        return (
            f"no model to serve: {problem.describe()}"
            if problem
            else f"no champion model in {registry_dir}"
        )

    def state_or_503() -> ServingState:
        state = watcher.state
        if state is None:
            raise HTTPException(503, detail=no_model())
        return state

    def problem_of() -> dict[str, object] | None:
        problem = watcher.problem
        if problem is None:
            return None
        return {
            "kind": problem.kind,
            "version": problem.version,
            "reason": problem.reason,
            "since": problem.since,
        }

    def health_of(state: ServingState | None) -> Response:
        problem = problem_of()
        return _json(
            {
                "status": "ok" if state is not None and problem is None else "degraded",
                "ready": state is not None,
                "model_version": state.version.version if state else None,
                "problem": problem,
            },
            200 if state is not None else 503,
        )

    @app.get("/health")
    async def health() -> Response:
        """Liveness: 200 while a model answers (``status`` ``degraded`` with the ``problem``
        when the registry's champion was refused), 503 while no model can."""
        requests[("health", "")] += 1
        return health_of(watcher.state)

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: 200 once a model is loaded, its kernels warmed, its precomputed answers
        verified against live scoring on probe users, and probe requests (unknown user, known
        user, live scoring) answered correctly through the whole app — just now, so that the
        request path is warm when traffic follows; 503 (with the reason) otherwise."""
        state = watcher.state
        reason = no_model() if state is None else None
        request_path: dict[str, object] = {}
        if state is not None:
            try:
                request_path = await warm_request_path(app, state)
            except Exception as exc:
                reason = f"the request path failed on a probe request: {printable(str(exc))}"
        if state is None or reason is not None:
            return _json(
                {
                    "ready": False,
                    "model_version": state.version.version if state else None,
                    "reason": reason,
                    "problem": problem_of(),
                },
                503,
            )
        return _json(
            {
                "ready": True,
                "model_version": state.version.version,
                "checks": {
                    "model_loaded": True,
                    "arrays": "memory-mapped" if state.mapped else "in memory",
                    "precomputed_k": state.k,
                    "warmed": True,
                    "probe": state.probe,
                    "request_path": request_path,
                },
                "problem": problem_of(),
            }
        )

    async def answer(
        user_id: str, raw_k: str, excluded: list[str], probe: bool = False
    ) -> tuple[int, bytes]:
        """(status, JSON body) of GET /recommendations/{user_id}; ``probe``: a request of
        the readiness probe (counted apart)."""
        k = _int_or_none(raw_k)
        if k is None or not 1 <= k <= MAX_K:
            return _invalid("k", f"k must be an integer from 1 to {MAX_K}", raw_k)
        if len(excluded) > MAX_EXCLUDE:
            return _invalid("exclude", f"at most {MAX_EXCLUDE} items to exclude", len(excluded))
        state = watcher.state
        if state is None:
            return 503, json.dumps({"detail": no_model()}).encode()
        if excluded or k > state.k:
            body, label = await run_in_threadpool(_answer_json, state, user_id, k, excluded)
        else:
            body, label = _answer_json(state, user_id, k, excluded)
        (probes if probe else requests)[("recommendations", label)] += 1
        return 200, body

    @app.get(
        "/recommendations/{user_id}",
        responses={200: {"model": Recommendations}},
        openapi_extra={"parameters": RECOMMENDATION_PARAMETERS},
    )
    async def recommendations(user_id: str, request: Request) -> Response:
        """The top ``k`` items for ``user_id``: from the precomputed arrays for a known user,
        the popularity ranking for an unknown one; ``exclude`` items are scored live."""
        query = request.query_params  # parsed here, not declared: see RecommendationsFastPath
        status, body = await answer(user_id, query.get("k", "10"), query.getlist("exclude"))
        return Response(body, status, media_type="application/json")

    app.add_middleware(RecommendationsFastPath, answer=answer)

    @app.post("/recommendations", responses={200: {"model": BatchResults}})
    async def batch_recommendations(request: Annotated[BatchRequest, Body()]) -> Response:
        """Many users in one request (back-office jobs), all from one model version."""
        state = state_or_503()

        def answer_all() -> bytes:
            return b",".join(
                _answer_json(state, u, request.k, request.exclude)[0] for u in request.user_ids
            )

        results = await run_in_threadpool(answer_all)
        requests[("batch", "")] += 1
        head = b'{"k":%d,"model_version":"%s","results":[' % (
            request.k,
            state.version.version.encode(),
        )
        return Response(head + results + b"]}", media_type="application/json")

    @app.get("/model")
    async def model() -> Response:
        state = state_or_503()
        version = state.version
        return _json(
            {
                "version": version.version,
                "model_type": version.model_type,
                "metrics": version.metrics,
                "sha256": version.sha256,
                "created_at": version.created_at,
                "run_id": version.run_id,
            }
        )

    admin = APIRouter(prefix="/admin", dependencies=[Security(admin_guard(admin_token))])

    @admin.post("/reload")
    def reload() -> Response:
        """Load the champion again even if its pointer did not change (after fixing its files);
        answers like /health. Needs the admin token."""
        return health_of(watcher.reload())

    app.include_router(admin)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        state = watcher.state
        lines = [
            "# TYPE recomart_serving_requests_total counter",
            *(
                f'recomart_serving_requests_total{{endpoint="{e}",strategy="{s}"}} {n}'
                for (e, s), n in sorted(requests.items())
            ),
            "# TYPE recomart_serving_probe_requests_total counter",
            *(
                f'recomart_serving_probe_requests_total{{endpoint="{e}",strategy="{s}"}} {n}'
                for (e, s), n in sorted(probes.items())
                if e == "recommendations"
            ),
            "# TYPE recomart_serving_model_info gauge",
            f'recomart_serving_model_info{{version="{state.version.version if state else ""}"}} 1',
            "# TYPE recomart_serving_reloads_total counter",
            f"recomart_serving_reloads_total {watcher.reloads}",
            "# TYPE recomart_serving_champion_refusals_total counter",
            f"recomart_serving_champion_refusals_total {watcher.refusals}",
            "# TYPE recomart_serving_degraded gauge",
            f"recomart_serving_degraded {int(watcher.problem is not None or state is None)}",
            "# TYPE recomart_serving_arrays_mapped gauge",
            f"recomart_serving_arrays_mapped {int(state is not None and state.mapped)}",
            "# TYPE recomart_serving_pid gauge",
            f"recomart_serving_pid {os.getpid()}",
        ]
        return "\n".join(lines) + "\n"

    return app


def app_from_env() -> FastAPI:
    """The app of ``python -m recomart_pipeline.serving``, built in each worker process from
    the environment the parent set (a worker is a fresh process: it cannot be handed an app)."""
    from recomart_pipeline.deployment.verification import read_admin_token

    return create_app(
        Path(os.environ[REGISTRY_ENV]),
        admin_token=read_admin_token(os.environ.get(TOKEN_ENV_ENV) or None),
    )
