"""The scoring service: app factory, champion loading, health/readiness and lead scoring.

Built by `create_app(settings)`; the champion is loaded in the lifespan, so the process answers
`/health` at once and `/ready` (and scoring) with 503 until a model is loaded. The lead request
model is derived from the dataset spec the service is configured with.
"""

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Body, Depends, FastAPI, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import store
from models.registry import LoadedModel
from models.spec import load_spec
from serving.reload import ModelHolder
from serving.schemas import (
    Health,
    OutcomeBase,
    Ready,
    Recorded,
    Reloaded,
    ScoreResponse,
    lead_model,
    outcome_model,
)
from serving.scoring import FAST_PATH_MAX, as_dicts, feature_row, log_rows, score_leads
from serving.settings import ServeSettings

log = logging.getLogger(__name__)


def create_app(settings: ServeSettings, holder: ModelHolder | None = None) -> FastAPI:
    """The service; `holder` (the served model and its reload) is built from settings if absent."""
    spec = load_spec(settings.spec_path)
    lead = lead_model(spec, settings.forbid_unknown_fields)

    models = holder or ModelHolder(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = store.connect(settings.database_url)
        await asyncio.to_thread(models.reload, True)
        watcher = None
        if settings.reload_seconds > 0:
            watcher = asyncio.create_task(models.watch(settings.reload_seconds))
        yield
        if watcher is not None:
            watcher.cancel()
        app.state.engine.dispose()

    app = FastAPI(
        title="Lead acceptance predictor",
        version="0.1.0",
        lifespan=lifespan,
        description="Scores MQLs: P(accept), P(SQL), rule criteria, reasons and route.",
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    bearer = HTTPBearer(auto_error=False, description="API key (scoring or admin role)")

    async def require_scorer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _check_key(credentials, [*settings.score_keys, *settings.admin_keys])

    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _check_key(credentials, settings.admin_keys)

    async def current_model() -> LoadedModel:
        loaded = models.loaded  # one reference for the whole request, whatever a reload does
        if loaded is None:
            reason = models.error or "loading"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model loaded: {reason}")
        return loaded

    @app.get("/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/ready", response_model=Ready, tags=["ops"])
    def ready(loaded: Annotated[LoadedModel, Depends(current_model)]) -> Ready:
        """Readiness: a model is loaded and scoring will answer."""
        return Ready(status="ready", model_name=loaded.name, model_version=loaded.version)

    @app.post(
        "/v1/leads/score",
        response_model=ScoreResponse,
        tags=["scoring"],
        dependencies=[Depends(require_scorer)],
        responses={
            413: {"description": "batch larger than the configured maximum"},
            503: {"description": "no model loaded yet"},
        },
    )
    async def score(
        leads: Annotated[lead | list[lead], Body(description="one lead, or a list of leads")],
        loaded: Annotated[LoadedModel, Depends(current_model)],
        reasons: Annotated[bool, Query(description="include the top reasons each way")] = False,
    ) -> ScoreResponse:
        """Score one MQL or a batch: probabilities, tier, route, rule criteria and reasons."""
        batch = leads if isinstance(leads, list) else [leads]
        if len(batch) > settings.max_batch:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"{len(batch)} leads in one request; the maximum is {settings.max_batch}",
            )

        def work() -> ScoreResponse:
            dicts = as_dicts(batch, spec)
            scores = score_leads(loaded, dicts, reasons, settings.sales_sla_hours)
            store.log_scores(app.state.engine, log_rows(loaded, dicts, scores))
            return ScoreResponse(scores=scores)

        # One lead is cheaper than a thread hop; a big batch must not stall the event loop.
        return work() if len(batch) <= FAST_PATH_MAX else await asyncio.to_thread(work)

    @app.post(
        "/v1/admin/reload",
        response_model=Reloaded,
        tags=["admin"],
        dependencies=[Depends(require_admin)],
    )
    def reload_model() -> Reloaded:
        """Load the registry's current champion now (the service also polls for it)."""
        changed = models.reload()
        version = models.loaded.version if models.loaded else None
        return Reloaded(model_version=version, changed=changed, error=models.error)

    outcome = outcome_model(lead)

    @app.post(
        "/v1/outcomes",
        response_model=Recorded,
        tags=["outcomes"],
        dependencies=[Depends(require_admin)],
    )
    def record_outcomes(
        body: Annotated[outcome | list[outcome], Body(description="one outcome, or a list")],
    ) -> Recorded:
        """Record sales' decisions by lead id (idempotent: the same call twice, the same state).

        The lead must have been scored here, or the outcome must carry its features in `lead`.
        """
        batch = body if isinstance(body, list) else [body]
        if len(batch) > settings.max_batch:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"at most {settings.max_batch} outcomes per request",
            )
        _require_known_leads(app.state.engine, batch)
        unscored = [o for o in batch if o.lead is not None]
        store.log_scores(app.state.engine, [feature_row(spec, o.lead_id, o.lead) for o in unscored])
        store.record_outcomes(
            app.state.engine, [o.model_dump(exclude={"lead"}, exclude_unset=True) for o in batch]
        )
        return Recorded(recorded=len(batch))

    return app


def _require_known_leads(engine: Engine, batch: list[OutcomeBase]) -> None:
    without_features = [o.lead_id for o in batch if o.lead is None]
    known = store.scored_lead_ids(engine, without_features) if without_features else set()
    errors = [
        {
            "type": "unknown_lead",
            "loc": ["body", i, "lead_id"],
            "msg": f"lead {o.lead_id!r} was never scored here; send its features in 'lead'",
            "input": o.lead_id,
        }
        for i, o in enumerate(batch)
        if o.lead is None and o.lead_id not in known
    ]
    if errors:
        raise RequestValidationError(errors)


def _check_key(credentials: HTTPAuthorizationCredentials | None, keys: list[SecretStr]) -> None:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    # Compare with every key, in constant time, so timing says nothing about which was close.
    matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in keys]
    if not any(matches):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "API key not valid for this endpoint")


class BodyLimit:
    """Pure ASGI middleware: 413 for bodies over the limit, declared or streamed.

    (Starlette's BaseHTTPMiddleware would cost more than scoring a lead does.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, 413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
