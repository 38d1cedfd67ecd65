"""An express lane for one route's common case, in front of the whole FastAPI app.

FastAPI's middleware stack, routing and request/response wrappers cost a single-lead scoring
request about as much as scoring the lead. This ASGI wrapper (see serving.app.ServiceApp) reads a
small body itself and hands it to `answer`. When `answer` returns bytes they are the 200 response;
when it returns None (a bad key, a bad body, no model, a big batch: anything but the common case)
the request goes on to the FastAPI route with its body replayed, so every error comes from the one
declared route, with its usual status and shape. The route and `answer` share the code that
scores, so a lead gets the same response either way (tests/test_serving.py checks both). An
unexpected error in `answer` is a 500 from uvicorn instead of from Starlette's error middleware.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# (body, Authorization header, query string) -> response body, or None for "let the route answer".
Answer = Callable[[bytes, str | None, str], bytes | None]

_JSON_HEADERS = [(b"content-type", b"application/json")]

# Bodies up to this size are read by the lane (a lead is about 1 kB); bigger ones go straight on.
EXPRESS_MAX_BYTES = 65_536


class ExpressLane:
    """Answers `POST path` with `answer` when it can; everything else passes through untouched."""

    def __init__(
        self, app: ASGIApp, path: str, answer: Answer, max_bytes: int = EXPRESS_MAX_BYTES
    ) -> None:
        self.app, self.path, self.answer, self.max_bytes = app, path, answer, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = self._headers_if_eligible(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive, self.max_bytes)
        authorization = headers.get(b"authorization")
        response = None
        if not more:
            response = self.answer(
                body,
                authorization.decode("latin-1") if authorization is not None else None,
                scope.get("query_string", b"").decode("latin-1"),
            )
        if response is None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(response)).encode()), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": response})

    def _headers_if_eligible(self, scope: Scope) -> dict[bytes, bytes] | None:
        """The request's headers when the lane may take it (None: pass it on untouched)."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return None
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        return headers if declared.isdigit() and int(declared) <= self.max_bytes else None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body up to `limit` bytes; `more` is True when the client had more to send."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the route see it
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > limit:
            return b"".join(chunks), True


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that gives back what the lane read, then carries on with the client's own."""
    replayed = False

    async def replaying() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replaying
