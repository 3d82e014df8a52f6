"""A loopback stand-in for the sidecar's LLM route (contract.json "llm"; docs/llm-route.md), with
the providers behind it played in memory: what an agent sees on {HEXR_SIDECAR_URL}/v1/llm.

As the sidecar: the caller's identity from `Authorization: Bearer <JWT-SVID>` (none, unparsable or
expired → 401 with the contract's error body), the exact routes (`/v1/llm/{provider}{endpoint}`
for the contract's providers and endpoints, else 404; a method other than POST → 405), the
grants (`denied_models` → 403), the budget (`budget_exhausted` → 429 with `retry-after`), revoked
identities (403), and `stream_options.include_usage` turned on for OpenAI-style chat streams. It
records every request (method, path, the headers an agent might put a key in, the bearer token's
claims, the body) but never answers with a key.

As the providers: OpenAI chat completions (JSON and SSE), Anthropic messages (JSON and SSE; a
missing `anthropic-version` is Anthropic's own 400), Azure OpenAI chat completions on a deployment
(`api-version` required, as Azure does). `provider_error` makes the next call answer the
provider's own error shape instead.

GET /v1/llm/usage answers `usage_rows`: every row for an identity in `admins`, else the caller's.

Not modelled: the real SVID verification (tokens are unsigned here), mTLS, the vault lookup of
the provider key, metering (usage_rows is set by the test), prices.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Set, Tuple

LLM = "/v1/llm"
ENDPOINTS = {
    "openai": ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"),
    "anthropic": ("/v1/messages",),
}
AZURE_ENDPOINTS = ("chat/completions", "completions", "embeddings")
KEY_HEADERS = ("authorization", "x-api-key", "api-key")
REPLY = "All systems nominal."


class Refusal(Exception):
    def __init__(self, status: int, type_: str, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}


def claims_of(authorization: str) -> Optional[dict]:
    if not authorization.startswith("Bearer "):
        return None
    try:
        payload = authorization[7:].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) and isinstance(claims.get("sub"), str) else None
    except Exception:
        return None


class FakeLlmSidecar:
    def __init__(self) -> None:
        #: every request: method, path, provider, claims (of the bearer token), key_headers (the
        #: values of authorization/x-api-key/api-key other than the bearer JWT-SVID),
        #: anthropic_version, body (parsed JSON), status
        self.requests: List[dict] = []
        self.denied_models: Set[str] = set()
        self.revoked: Set[str] = set()
        self.admins: Set[str] = set()
        self.budget_exhausted = False
        self.retry_after = "30"
        #: (status, body) of the provider's own error for the next call
        self.provider_error: Optional[Tuple[int, dict]] = None
        self.usage_rows: List[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _serve(self):
                fake._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- HTTP -----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = handler.headers.get("content-length")
        raw = handler.rfile.read(int(length)) if length and length.isdigit() else b""
        authorization = handler.headers.get("authorization") or ""
        claims = claims_of(authorization)
        keys = {}
        for name in KEY_HEADERS:
            value = handler.headers.get(name)
            if value is not None and not (name == "authorization" and claims is not None):
                keys[name] = value
        record: Dict[str, Any] = {
            "method": handler.command,
            "path": handler.path,
            "claims": claims,
            "key_headers": keys,
            "anthropic_version": handler.headers.get("anthropic-version"),
            "content_type": handler.headers.get("content-type"),
            "body": None,
        }
        try:
            record["body"] = json.loads(raw) if raw else None
        except ValueError:
            record["body"] = raw
        with self._lock:
            self.requests.append(record)
        try:
            status, headers, data = self._answer(handler.command, handler.path, claims, handler.headers, record)
        except Refusal as refusal:
            status, headers = refusal.status, dict({"content-type": "application/json"}, **refusal.headers)
            data = json.dumps({"error": {"type": refusal.type, "message": refusal.message}}).encode()
        record["status"] = status
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def _caller(self, claims: Optional[dict]) -> str:
        if claims is None:
            raise Refusal(401, "AuthenticationError", "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= time.time():
            raise Refusal(401, "AuthenticationError", "the JWT-SVID has expired")
        if claims["sub"] in self.revoked:
            raise Refusal(403, "CredentialError", "the identity is revoked")
        return claims["sub"]

    def _answer(self, method: str, target: str, claims: Optional[dict], headers, record: dict) -> Tuple[int, Dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        if not path.startswith(LLM + "/"):
            raise Refusal(404, "BadRequest", "no such route")
        caller = self._caller(claims)
        if path == LLM + "/usage":
            if method != "GET":
                raise Refusal(405, "BadRequest", "method not allowed")
            rows = self.usage_rows if caller in self.admins else [r for r in self.usage_rows if r["spiffe_id"] == caller]
            return 200, {"content-type": "application/json"}, json.dumps({"rows": rows}).encode()
        provider, _, endpoint = path[len(LLM) + 1:].partition("/")
        endpoint = "/" + endpoint
        record["provider"] = provider
        if provider == "azure_openai":
            parts = endpoint.split("/", 4)  # "", "openai", "deployments", "{deployment}", rest
            if len(parts) != 5 or parts[1:3] != ["openai", "deployments"] or parts[4] not in AZURE_ENDPOINTS:
                raise Refusal(404, "BadRequest", "unknown LLM endpoint")
            deployment, endpoint = parts[3], "/" + parts[4]
        elif provider in ENDPOINTS:
            if endpoint not in ENDPOINTS[provider]:
                raise Refusal(404, "BadRequest", "unknown LLM endpoint")
            deployment = None
        else:
            raise Refusal(404, "BadRequest", "unknown LLM provider")
        if method != "POST":
            raise Refusal(405, "BadRequest", "method not allowed")
        body = record["body"]
        if not isinstance(body, dict):
            raise Refusal(400, "BadRequest", "the body is not a JSON object")
        model = deployment or body.get("model")
        if model in self.denied_models:
            raise Refusal(403, "CredentialError", "the model is not granted to this identity")
        if self.budget_exhausted:
            raise Refusal(429, "CredentialError", "the LLM budget of this identity is exhausted", {"retry-after": self.retry_after})
        if self.provider_error is not None:
            status, error = self.provider_error
            self.provider_error = None
            return status, {"content-type": "application/json", "retry-after": "7"}, json.dumps(error).encode()
        if provider == "anthropic":
            if headers.get("anthropic-version") is None:
                return 400, {"content-type": "application/json"}, json.dumps(
                    {"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"}}).encode()
            return self._anthropic(body)
        if provider == "azure_openai":
            query = urllib.parse.parse_qs(parsed.query)
            if not query.get("api-version"):
                return 404, {"content-type": "application/json"}, json.dumps(
                    {"error": {"code": "404", "message": "Resource not found"}}).encode()
        if endpoint != "/v1/chat/completions" and endpoint != "/chat/completions":
            raise Refusal(404, "BadRequest", "this stand-in plays chat completions only")
        if body.get("stream"):
            # The sidecar turns usage on for streams that did not ask for it, to meter them.
            options = body.setdefault("stream_options", {})
            options.setdefault("include_usage", True)
        return self._openai(body, model)

    # ---- the providers --------------------------------------------------------------------------

    @staticmethod
    def _openai(body: dict, model: str) -> Tuple[int, Dict[str, str], bytes]:
        created = int(time.time())
        served = model + "-2024-08-06"
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 0}}
        if not body.get("stream"):
            answer = {
                "id": "chatcmpl-fake1", "object": "chat.completion", "created": created, "model": served,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            }
            return 200, {"content-type": "application/json"}, json.dumps(answer).encode()
        chunks = []
        base = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": created, "model": served}
        for i, piece in enumerate(("All systems", " nominal.")):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            chunks.append(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]))
        chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if body.get("stream_options", {}).get("include_usage"):
            chunks.append(dict(base, choices=[], usage=usage))
        data = "".join("data: %s\n\n" % json.dumps(chunk) for chunk in chunks) + "data: [DONE]\n\n"
        return 200, {"content-type": "text/event-stream"}, data.encode()

    @staticmethod
    def _anthropic(body: dict) -> Tuple[int, Dict[str, str], bytes]:
        model = body.get("model")
        usage = {"input_tokens": 10, "output_tokens": 6, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2}
        message = {"id": "msg_fake1", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return 200, {"content-type": "application/json"}, json.dumps(message).encode()
        events = [
            ("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                                         usage=dict(usage, output_tokens=1))}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "All systems"}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " nominal."}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 6}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        data = "".join("event: %s\ndata: %s\n\n" % (name, json.dumps(event)) for name, event in events)
        return 200, {"content-type": "text/event-stream"}, data.encode()

    # ---- test helpers ---------------------------------------------------------------------------

    def llm_requests(self) -> List[dict]:
        return [r for r in self.requests if r.get("provider")]
