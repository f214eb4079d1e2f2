"""The ASGI application: routes, request limits, answers, metrics and access logs.

Routes (docs/DESIGN.md, "Serving API": its own, and the Open Inference Protocol v2 beside them):

    POST /predict        GET /health        GET /metadata        GET /metrics
    GET  /v2             GET /v2/health/live                     GET /v2/health/ready
    GET  /v2/models/{name}[/versions/{v}]   GET /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

Texts go to the ``Batcher`` (dynamic batching on worker threads); everything else is
answered on the event loop. Every answer is JSON, errors ``{"error": ...}`` with a 4xx.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from . import oip
from .accesslog import AccessLog
from .batching import Batcher, ServerClosed
from .errors import RequestError, bad_request, too_large
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics
from .model import Model, Result
from .settings import Settings

DRAIN_LIMIT = 16 << 20  # a refused body up to this is read away (keep-alive), past it: close
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
JSON = "application/json"
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    close: bool = False
    texts: int = 0


def json_response(doc: Any, status: int = 200, texts: int = 0) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode(), texts=texts)


class ClientGone(Exception):
    """The client disconnected before its request arrived whole."""


class Request:
    def __init__(self, scope: Scope, receive: Receive, max_body: int) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self._receive = receive
        self._max_body = max_body
        self.body_read = False

    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        return int(raw) if raw is not None and raw.isdigit() else None

    async def body(self) -> bytes:
        """The whole body, once its Content-Length is known to be within the limit."""
        n = self.content_length()
        if n is None:
            close = "transfer-encoding" in self.headers
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", close)
        if n > self._max_body:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"body of {n} bytes exceeds the limit of {self._max_body}",
                               close=n > DRAIN_LIMIT)
        chunks = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.body_read = True
                return b"".join(chunks)


def parse_texts(body: bytes, settings: Settings) -> list[str]:
    """Validate a /predict body: ``{"text": str}`` or ``{"texts": [str, ...]}``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        # ValueError covers bad UTF-8, bad JSON and integers past Python's 4,300-digit limit;
        # RecursionError, nesting deeper than the parser's stack.
        raise bad_request(f"body is not valid JSON: {e}"[:200]) from e
    if not isinstance(doc, dict) or ("text" in doc) == ("texts" in doc):
        raise bad_request('expected an object with "text" or "texts"')
    texts = [doc["text"]] if "text" in doc else doc["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise bad_request('"text" must be a string, "texts" a list of strings')
    if not texts:
        raise bad_request('"texts" is empty')
    if len(texts) > settings.max_batch:
        raise too_large(f"{len(texts)} texts exceed the batch limit of {settings.max_batch}")
    if any(len(t) > settings.max_text_chars for t in texts):
        raise too_large(f"a text exceeds {settings.max_text_chars} characters")
    return texts


Handler = Callable[[Request, Mapping[str, str]], Awaitable[Response]]


class App:
    """The ASGI app over a loaded model; ``close()`` stops its batcher and log writer."""

    def __init__(self, model: Model, settings: Settings, load_seconds: float = 0.0) -> None:
        self.model = model
        self.settings = settings
        info = model.info
        self.name = settings.model_name or info.model_name or "model"
        self.metadata = {
            "model_name": info.model_name,
            "task": info.task,
            "architecture": info.architecture,
            "labels": list(info.labels),
            **model.head.metadata,  # e.g. feature-extraction's pooling and dim
            "onnx_file": info.onnx_file,
            "onnx_sha256": info.onnx_sha256,
            "quantization": info.quantization,
            "max_length": info.max_length,
            "advisor_version": settings.advisor_version or info.advisor_version,
            "limits": {"max_body_bytes": settings.max_body_bytes, "max_batch": settings.max_batch},
        }
        self.metrics = Metrics(
            {"name": self.name, "task": info.task, "onnx_sha256": info.onnx_sha256,
             "quantization": info.quantization}, load_seconds)
        self.batcher = Batcher(model, settings.max_batch, settings.max_wait_ms / 1000,
                               settings.workers, self.metrics)
        dim = model.head.metadata.get("dim")
        self.endpoint = oip.ModelEndpoint(
            self.name, info.task, info.labels, dim if isinstance(dim, int) else None,
            oip.Limits(settings.max_batch, settings.max_text_chars))
        self.log = AccessLog(settings.access_log)
        self.routes: dict[str, dict[str, Handler]] = {
            "/predict": {"POST": self._predict},
            "/health": {"GET": self._ok({"status": "ok"})},
            "/metadata": {"GET": self._ok(self.metadata)},
            "/metrics": {"GET": self._metrics},
            "/v2": {"GET": self._ok({"name": "advisor-serve", "extensions": list(oip.EXTENSIONS),
                                     "version": self.metadata["advisor_version"]})},
            "/v2/health/live": {"GET": self._ok({"live": True})},
            "/v2/health/ready": {"GET": self._ok({"ready": True})},
            "/v2/models/{name}": {"GET": self._model_metadata},
            "/v2/models/{name}/ready": {"GET": self._model_ready},
            "/v2/models/{name}/infer": {"POST": self._infer},
        }

    def close(self) -> None:
        self.batcher.close()
        self.log.close()

    def predict(self, body: bytes) -> dict[str, Any]:
        """``POST /predict`` without HTTP (the body in, the answer out), for callers in-process."""
        results = self.batcher.submit(parse_texts(body, self.settings)).result()
        return {"predictions": [r.as_json() for r in results]}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is spoken
            return
        began = time.perf_counter()
        request = Request(scope, receive, self.settings.max_body_bytes)
        self.metrics.in_flight.inc()
        try:
            route, response = await self._respond(request)
        except ClientGone:
            self.metrics.in_flight.dec()
            return
        headers = [(b"content-type", response.content_type.encode()),
                   (b"content-length", str(len(response.body)).encode()), *response.headers]
        if response.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        self.metrics.in_flight.dec()
        seconds = time.perf_counter() - began
        self.metrics.observe_request(route, request.method, response.status, seconds)
        self.log.request(scope, response.status, len(response.body), seconds, response.texts)

    async def _respond(self, request: Request) -> tuple[str, Response]:
        route = "other"
        try:
            if request.scope["http_version"] not in ("1.0", "1.1"):
                raise RequestError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                                   f"HTTP/{request.scope['http_version']} is not supported", True)
            if request.method not in METHODS:
                raise RequestError(HTTPStatus.NOT_IMPLEMENTED,
                                   f"method {request.method} is not supported", True)
            route, params = template(request.path)
            route = route if route in self.routes else "other"
            handler = self._handler(route, request)
            response = await handler(request, params)
        except RequestError as e:
            response = json_response({"error": e.message}, e.status)
            response.close = e.close
            if e.status == HTTPStatus.METHOD_NOT_ALLOWED:
                allowed = ", ".join(self.routes.get(route, {}))
                response.headers.append((b"allow", allowed.encode()))
        except (ClientGone, asyncio.CancelledError):
            raise
        except Exception as e:  # the server must answer, whatever the model does
            print(f"advisor-serve: {request.method} {request.path[:200]} failed: {e!r}",
                  file=sys.stderr, flush=True)
            response = json_response({"error": "internal error"}, 500)
        n = request.content_length()
        if not request.body_read and n is not None and n > DRAIN_LIMIT:
            response.close = True  # an unread body that large is not read away
        return route, response

    def _handler(self, route: str, request: Request) -> Handler:
        methods = self.routes.get(route)
        if methods is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no route {request.path[:200]}")
        method = "GET" if request.method == "HEAD" else request.method
        if method not in methods:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED,
                               f"{request.method} not allowed on {request.path[:200]}")
        return methods[method]

    # -- handlers ---------------------------------------------------------------------

    def _ok(self, doc: Mapping[str, Any]) -> Handler:
        body = json.dumps(doc, separators=(",", ":")).encode()

        async def handler(request: Request, params: Mapping[str, str]) -> Response:
            return Response(200, body)

        return handler

    async def _run(self, texts: list[str]) -> list[Result]:
        try:
            return await asyncio.wrap_future(self.batcher.submit(texts))
        except ServerClosed as e:
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, str(e), close=True) from e

    async def _predict(self, request: Request, params: Mapping[str, str]) -> Response:
        texts = parse_texts(await request.body(), self.settings)
        results = await self._run(texts)
        return json_response({"predictions": [r.as_json() for r in results]}, texts=len(texts))

    async def _metrics(self, request: Request, params: Mapping[str, str]) -> Response:
        return Response(200, self.metrics.render(), METRICS_TYPE)

    async def _model_metadata(self, request: Request, params: Mapping[str, str]) -> Response:
        self.endpoint.check(params["name"], params.get("version"))
        return json_response(self.endpoint.metadata())

    async def _model_ready(self, request: Request, params: Mapping[str, str]) -> Response:
        self.endpoint.check(params["name"], params.get("version"))
        return json_response({"name": self.name, "ready": True})

    async def _infer(self, request: Request, params: Mapping[str, str]) -> Response:
        self.endpoint.check(params["name"], params.get("version"))
        body = await request.body()
        parsed = self.endpoint.parse(body, request.headers.get(oip.HEADER_LENGTH))
        results = await self._run(parsed.texts)
        payload, header_length = self.endpoint.respond(parsed, results)
        if header_length is None:
            return Response(200, payload, texts=len(parsed.texts))
        return Response(200, payload, "application/octet-stream",
                        [(oip.HEADER_LENGTH.encode(), str(header_length).encode())],
                        texts=len(parsed.texts))


def template(path: str) -> tuple[str, dict[str, str]]:
    """``/v2/models/m/versions/1/infer`` -> (``/v2/models/{name}/infer``, name and version)."""
    if not path.startswith("/v2/models/"):
        return path, {}
    parts = path[len("/v2/models/"):].split("/")
    params = {"name": parts[0]}
    rest = parts[1:]
    if len(rest) >= 2 and rest[0] == "versions":
        params["version"], rest = rest[1], rest[2:]
    if not parts[0] or len(rest) > 1 or (rest and rest[0] not in ("ready", "infer")):
        return "other", {}
    return "/v2/models/{name}" + (f"/{rest[0]}" if rest else ""), params
