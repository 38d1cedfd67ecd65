"""The scoring service: app factory, champion loading, health/readiness and lead scoring.

Built by `create_app(settings)`; the champion is loaded in the lifespan, so the process answers
`/health` at once and `/ready` (and scoring) with 503 until a model is loaded. The lead request
model is derived from the dataset spec the service is configured with.
"""

import asyncio
import hmac
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Body, Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import store
from models.registry import CARD_ARTIFACT, REPORT_ARTIFACT, LoadedModel
from models.spec import load_spec
from serving.lane import EXPRESS_MAX_BYTES, Answer, ExpressLane
from serving.logwriter import ScoringLogWriter
from serving.reload import ModelHolder
from serving.schemas import (
    Health,
    ModelInfo,
    OutcomeBase,
    Ready,
    Recorded,
    Reloaded,
    ScoreResponse,
    lead_model,
    outcome_model,
)
from serving.scoring import (
    FAST_PATH_MAX,
    answer_json,
    as_dicts,
    feature_row,
    log_rows,
    score_leads,
)
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
        app.state.log_writer = ScoringLogWriter(settings.database_url)
        await asyncio.to_thread(models.reload, True)
        watcher = None
        if settings.reload_seconds > 0:
            watcher = asyncio.create_task(models.watch(settings.reload_seconds))
        yield
        if watcher is not None:
            watcher.cancel()
        await asyncio.to_thread(app.state.log_writer.close)
        app.state.engine.dispose()

    app = ServiceApp(
        title="Lead acceptance predictor",
        version="0.1.0",
        lifespan=lifespan,
        description="Scores MQLs: P(accept), P(SQL), rule criteria, reasons and route.",
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    bearer = HTTPBearer(auto_error=False, description="API key (scoring or admin role)")
    # Encoded once here: the key check runs on every request.
    admin_keys = _encoded(settings.admin_keys)
    scoring_keys = [*_encoded(settings.score_keys), *admin_keys]  # admin keys may score too

    async def require_reader(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _check_key(credentials.credentials if credentials else None, scoring_keys)

    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _check_key(credentials.credentials if credentials else None, admin_keys)

    def served() -> LoadedModel:
        loaded = models.loaded  # one reference for the whole request, whatever a reload does
        if loaded is None:
            reason = models.error or "loading"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model loaded: {reason}")
        return loaded

    async def current_model() -> LoadedModel:
        return served()

    @app.get("/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/ready", response_model=Ready, tags=["ops"])
    def ready(loaded: Annotated[LoadedModel, Depends(current_model)]) -> Ready:
        """Readiness: a model is loaded and scoring will answer."""
        return Ready(status="ready", model_name=loaded.name, model_version=loaded.version)

    # The hot route reads its own body, key and flag: FastAPI's parameter machinery (dependency
    # solving, JSON decoding to dicts, then validation) costs more than scoring the lead does.
    # pydantic validates the raw JSON in one pass and errors keep FastAPI's 422 shape; the
    # OpenAPI operation is declared below, so the docs are the same as for a declared route.
    leads_adapter = TypeAdapter(lead | list[lead])

    @app.post(
        "/v1/leads/score",
        response_model=ScoreResponse,
        tags=["scoring"],
        openapi_extra=_score_operation(lead.__name__),
        responses={
            401: {"description": "missing API key"},
            403: {"description": "API key without the scoring role"},
            413: {"description": "batch larger than the configured maximum"},
            422: {"description": "invalid leads: each error names the field"},
            503: {"description": "no model loaded yet"},
        },
    )
    async def score(request: Request) -> Response:
        """Score one MQL or a batch: probabilities, tier, route, rule criteria and reasons."""
        loaded, batch, reasons = read_request(
            await request.body(),
            request.headers.get("authorization"),
            request.query_params.get("reasons"),
        )
        # One lead is cheaper than a thread hop; a big batch must not stall the event loop.
        if len(batch) <= FAST_PATH_MAX:
            body = answer(loaded, batch, reasons)
        else:
            body = await asyncio.to_thread(answer, loaded, batch, reasons)
        return Response(body, media_type="application/json")

    def read_request(
        body: bytes, authorization: str | None, reasons: str | None
    ) -> tuple[LoadedModel, list[Any], bool]:
        """A scoring request's model, leads and flag; its key, then the model, the flag, the
        leads and their number are checked in that order, raising the route's 401/403, 503,
        422 or 413."""
        _check_key(_bearer_token(authorization), scoring_keys)
        loaded = served()
        with_reasons = _flag(reasons, "reasons")
        try:
            leads = leads_adapter.validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None
        batch = leads if isinstance(leads, list) else [leads]
        if len(batch) > settings.max_batch:
            raise HTTPException(
                413,
                f"{len(batch)} leads in one request; the maximum is {settings.max_batch}",
            )
        return loaded, batch, with_reasons

    def answer(loaded: LoadedModel, batch: list[Any], reasons: bool) -> bytes:
        dicts = as_dicts(batch, spec)
        scores = score_leads(loaded, dicts, reasons, settings.sales_sla_hours)
        rows = log_rows(loaded, dicts, scores, datetime.now(UTC))
        app.state.log_writer.submit([store.encode_log_row(row) for row in rows])
        # Built and typed by us already: skip FastAPI's re-validation of the response model
        # (it would cost a third of the request); `response_model` still documents it.
        return answer_json(scores)

    def answer_at_once(body: bytes, authorization: str | None, query: str) -> bytes | None:
        """The route's common case, for the express lane: a request the route would answer
        with 200 for a few leads. None for anything else, which the route then answers (its
        errors included, so they are raised in one place)."""
        reasons = dict(parse_qsl(query, keep_blank_values=True)).get("reasons")
        try:
            loaded, batch, with_reasons = read_request(body, authorization, reasons)
        except (HTTPException, RequestValidationError):
            return None
        return answer(loaded, batch, with_reasons) if len(batch) <= FAST_PATH_MAX else None

    if settings.express_lane:
        app.express(
            "/v1/leads/score", answer_at_once, min(settings.max_body_bytes, EXPRESS_MAX_BYTES)
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    # The training run's HTML pages the service shows: path -> (artifact, what it is).
    pages = {
        "/v1/model/report": (REPORT_ARTIFACT, "training report"),
        "/v1/model/card": (CARD_ARTIFACT, "model card"),
    }
    url_of = {artifact: path for path, (artifact, _) in pages.items()}

    @app.get(
        "/v1/model",
        response_model=ModelInfo,
        tags=["model"],
        dependencies=[Depends(require_reader)],
    )
    def model_info(loaded: Annotated[LoadedModel, Depends(current_model)]) -> ModelInfo:
        """The champion being served: version, routing policy and model card facts."""
        metadata = loaded.model.metadata
        return ModelInfo(
            model_name=loaded.name,
            model_version=loaded.version,
            criteria_version=loaded.model.criteria.version_id,
            routing_threshold=loaded.routing_threshold,
            sales_sla_hours=settings.sales_sla_hours,
            routing_policy=metadata.get("routing_policy"),
            card=metadata.get("card"),
            report_url=url_of[REPORT_ARTIFACT] if REPORT_ARTIFACT in loaded.reports else None,
            card_url=url_of[CARD_ARTIFACT] if CARD_ARTIFACT in loaded.reports else None,
        )

    def html_page(artifact: str, what: str) -> Callable[[LoadedModel], HTMLResponse]:
        def page(loaded: Annotated[LoadedModel, Depends(current_model)]) -> HTMLResponse:
            html = loaded.reports.get(artifact)
            if html is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND,
                    f"{loaded.name} v{loaded.version} has no {what} (trained before reports "
                    "existed)",
                )
            return HTMLResponse(html)

        return page

    for path, (artifact, what) in pages.items():
        app.add_api_route(
            path,
            html_page(artifact, what),
            methods=["GET"],
            response_class=HTMLResponse,
            tags=["model"],
            dependencies=[Depends(require_reader)],
            summary=f"The served model's {what}",
            description=f"The champion's {what} (HTML, figures embedded), from its training run.",
            responses={404: {"description": f"the served version has no {what}"}},
        )

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
                413,
                f"at most {settings.max_batch} outcomes per request",
            )
        # A lead scored a moment ago may still be on its way to the log.
        if not app.state.log_writer.flush():
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the scoring log is not being written ({app.state.log_writer.error}); retry",
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


def _encoded(keys: list[SecretStr]) -> list[bytes]:
    return [key.get_secret_value().encode() for key in keys]


def _check_key(token: str | None, keys: list[bytes]) -> None:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = token.encode()
    # Compare with every key, in constant time, so timing says nothing about which was close.
    matches = [hmac.compare_digest(given, key) for key in keys]
    if not any(matches):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "API key not valid for this endpoint")


def _bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    scheme, _, token = (header or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


_FLAG = TypeAdapter(bool)


def _flag(value: str | None, name: str) -> bool:
    """A boolean query parameter, spelled as FastAPI accepts it (true/1/yes/on, false/0/no/off)."""
    if value is None:
        return False
    try:
        return _FLAG.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", name)} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with one entry per field, as FastAPI gives it, whatever the client sent: FastAPI's own
    handler fails (a 500) on an input JSON cannot hold, such as 1e309 (inf) or invalid UTF-8."""
    assert isinstance(exc, RequestValidationError)
    body = {"detail": _json_safe(exc.errors())}
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "nan"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)  # an exception in "ctx", a datetime...


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]


def _score_operation(lead_schema: str) -> dict[str, Any]:
    """The OpenAPI parts FastAPI would derive from declared parameters: body, flag, key."""
    one = {"$ref": f"#/components/schemas/{lead_schema}"}
    return {
        "requestBody": {
            "required": True,
            "description": "one lead, or a list of leads",
            "content": {
                "application/json": {"schema": {"anyOf": [one, {"type": "array", "items": one}]}}
            },
        },
        "parameters": [
            {
                "name": "reasons",
                "in": "query",
                "required": False,
                "description": "include the top reasons each way",
                "schema": {"type": "boolean", "default": False},
            }
        ],
        "security": [{"HTTPBearer": []}],
    }


class ServiceApp(FastAPI):
    """FastAPI with an express lane for one route's common case in front of everything else:
    its middleware stack (error handling, body limits, routing) costs a single-lead request
    about as much as scoring the lead. See serving/lane.py."""

    _lane: ExpressLane | None = None

    def express(self, path: str, answer: Answer, max_bytes: int) -> None:
        self._lane = ExpressLane(partial(FastAPI.__call__, self), path, answer, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._lane is None:
            await super().__call__(scope, receive, send)
        else:
            await self._lane(scope, receive, send)


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
