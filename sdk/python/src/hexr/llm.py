"""LLM calls through the pod's sidecar: the agent holds no provider key.

    from hexr import hexr_agent, hexr_llm

    @hexr_agent(name="smart-agent", tenant="acme-corp")
    def main():
        response = hexr_llm(provider="openai", model="gpt-4o", prompt="Generate a status report")
        print(response["choices"][0]["message"]["content"])

    client = hexr.llm.openai_client()          # openai.OpenAI, pointed at the sidecar
    for chunk in client.chat.completions.create(model="gpt-4o", messages=[...], stream=True): ...

The wire (docs/llm-route.md; contract.json "llm"): POST {HEXR_SIDECAR_URL}/v1/llm/{provider}{endpoint}
with the JWT-SVID as `Authorization: Bearer`, exactly as for the vault, and the provider's own
request body. The sidecar verifies the SVID, strips `authorization`, `x-api-key` and `api-key`,
adds the provider's key itself (read from the vault in the caller's scope) and passes the
provider's answer back unchanged. It meters every call by SPIFFE ID: GET /v1/llm/usage
(`usage()`, `cost_tree()`, `hexr usage`).

Refusals of the sidecar itself have the contract's error body, exactly {"error": {"type", "message"}}
with a contract type; they map to the SDK's errors (403 AccessDeniedError, 429
BudgetExceededError, 401 AuthenticationError, 400/404/405/413 BadRequestError, 5xx
CredentialError). Any other error answer is the provider's own: ProviderError.

Never in a span, a log line or an error: the prompt, the messages, the completion, a key or the
JWT-SVID.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from opentelemetry.trace import SpanKind

from . import _contract as C
from . import telemetry
from .context import current_agent
from .contract import is_path_segment, parse_agent_spiffe_id
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    HexrError,
    MissingDependencyError,
    scrub,
)
from .identity import JwtSource, default_source, source_for_file
from .sidecar import DEFAULT_SIDECAR_URL, SidecarClient

__all__ = [
    "hexr_llm",
    "openai_client",
    "async_openai_client",
    "anthropic_client",
    "azure_openai_client",
    "usage",
    "cost_tree",
    "UsageRow",
    "ProviderError",
    "BudgetExceededError",
    "PROVIDERS",
]

log = logging.getLogger("hexr.llm")

LLM_PATH = C.LLM_PATH
USAGE_PATH = C.LLM_USAGE_PATH
PROVIDERS: Tuple[str, ...] = C.LLM_PROVIDERS

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_ANTHROPIC_MAX_TOKENS = 1024
#: The latest dated GA version of the Azure OpenAI data-plane API.
DEFAULT_AZURE_API_VERSION = "2024-10-21"
#: An LLM answer takes long; the openai and anthropic clients wait up to 10 minutes too.
DEFAULT_LLM_TIMEOUT_SECONDS = 600.0
DEFAULT_USAGE_TIMEOUT_SECONDS = 10.0

#: The key the provider clients insist on being given. It is not a key: the sidecar strips the
#: header it travels in (authorization / x-api-key / api-key) and sets the provider's real key.
PLACEHOLDER_KEY = "hexr-sidecar-supplies-the-key"

#: OpenTelemetry GenAI: gen_ai.system (older consumers) and gen_ai.provider.name (current).
_GEN_AI_SYSTEM = {"openai": "openai", "anthropic": "anthropic", "azure_openai": "az.ai.openai"}
_GEN_AI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "azure_openai": "azure.ai.openai"}
_EXTRA = {"openai": "openai", "anthropic": "anthropic"}


# ---- errors ---------------------------------------------------------------------------------------


class BudgetExceededError(CredentialError):
    """The sidecar refused the call because the caller's LLM budget is spent (429). A
    CredentialError; `retry_after` is the sidecar's `retry-after`, in seconds (None if absent)."""

    default_type = "CredentialError"
    default_status = 429

    def __init__(self, message: str, *, retry_after: Optional[float] = None, status: Optional[int] = None, type: Optional[str] = None) -> None:
        super().__init__(message, status=status, type=type)
        self.retry_after = retry_after

    def __reduce__(self):
        return (_rebuild_budget, (self.message, self.retry_after, self.status, self.type))


def _rebuild_budget(message, retry_after, status, type_):
    return BudgetExceededError(message, retry_after=retry_after, status=status, type=type_)


class ProviderError(HexrError):
    """The provider's own error answer, passed through by the sidecar (a 400 for a bad request,
    the provider's 429, a 500, ...): `status`, `provider`, `error_type` (the provider's: OpenAI's
    `error.type` or `error.code`, Anthropic's `error.type`, Azure's `error.code`) and `message`
    (the provider's, scrubbed of anything key-shaped). Nothing of the request is in it.
    `retry_after`: the answer's `retry-after`, in seconds, if any."""

    default_type = "ProviderError"

    def __init__(
        self, message: str, *, provider: str = "", status: Optional[int] = None, error_type: Optional[str] = None,
        retry_after: Optional[float] = None, type: Optional[str] = None,
    ) -> None:
        super().__init__(message, status=status, type=type)
        self.provider = provider
        self.error_type = scrub(error_type) if error_type else None
        self.retry_after = retry_after

    def __str__(self) -> str:
        kind = "%s %s" % (self.provider, self.error_type) if self.error_type else self.provider
        return "%s ProviderError (%s): %s" % (self.status, kind, self.message)

    def __repr__(self) -> str:
        return "ProviderError(provider=%r, status=%r, error_type=%r, message=%r)" % (
            self.provider, self.status, self.error_type, self.message)

    def __reduce__(self):
        return (_rebuild_provider, (self.message, self.provider, self.status, self.error_type, self.retry_after))


def _rebuild_provider(message, provider, status, error_type, retry_after):
    return ProviderError(message, provider=provider, status=status, error_type=error_type, retry_after=retry_after)


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    value = headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the sidecar sends seconds; a provider's date is not worth parsing here
    return seconds if seconds is not None and seconds >= 0 else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None  # outside the handler: a JSONDecodeError holds the whole body (.doc)


def _sidecar_refusal(answer: Any) -> Optional[Tuple[str, str]]:
    """(type, message) when the body is exactly the contract's error, {"error": {"type", "message"}}
    with a contract type. Providers' errors have other shapes: OpenAI's carries `param` and `code`
    and types such as invalid_request_error, Anthropic's a top-level "type": "error", Azure's a `code`."""
    if not isinstance(answer, dict) or set(answer) != {"error"}:
        return None
    error = answer["error"]
    if not isinstance(error, dict) or set(error) != {"type", "message"}:
        return None
    if error["type"] not in C.ERROR_TYPES or not isinstance(error["message"], str):
        return None
    return error["type"], error["message"]


def error_for(provider: str, status: int, headers: Mapping[str, str], body: bytes) -> HexrError:
    """The error for an answer of the LLM route other than 2xx (see the module's docstring)."""
    answer = _json(body)
    refusal = _sidecar_refusal(answer)
    if refusal is not None:
        type_, message = refusal
        if status == 429:
            return BudgetExceededError(message, retry_after=_retry_after(headers), status=429, type=type_)
        if status == 403:
            return AccessDeniedError(message, status=403, type=type_)
        if type_ == "AuthenticationError" or status == 401:
            return AuthenticationError(message, status=status)
        if type_ == "BadRequest":
            return BadRequestError(message, status=status)
        return CredentialError(message, status=status, type=type_)
    error_type: Optional[str] = None
    message: Optional[str] = None
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else error.get("code")
        error_type = kind if isinstance(kind, str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
    elif isinstance(error, str):
        message = error
    return ProviderError(
        message or "%s answered HTTP %d" % (provider, status), provider=provider, status=status,
        error_type=error_type, retry_after=_retry_after(headers),
    )


# ---- identity and transport -----------------------------------------------------------------------


def _identity_source(identity: Union[JwtSource, str, "os.PathLike[str]", None]) -> Callable[[], JwtSource]:
    """What gives the JWT-SVID at each request, as VaultClient finds it: the one given, else the
    running agent's (@hexr_agent(identity=...)), else the process's (Workload API, then the file)."""
    if identity is not None:
        fixed = identity if isinstance(identity, JwtSource) else source_for_file(os.fspath(identity))
        return lambda: fixed

    def find() -> JwtSource:
        context = current_agent()
        if context is not None and context.identity is not None:
            return context.identity
        return default_source()

    return find


def _sidecar_url(sidecar_url: Optional[str]) -> str:
    return (sidecar_url or os.environ.get("HEXR_SIDECAR_URL") or DEFAULT_SIDECAR_URL).rstrip("/")


_clients: Dict[Tuple[str, float], SidecarClient] = {}
_clients_lock = threading.Lock()


def _client(url: str, timeout: float) -> SidecarClient:
    key = (url, float(timeout))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = SidecarClient(url, timeout)
        return client


# ---- hexr_llm -------------------------------------------------------------------------------------


def _request(provider: str, model: str, messages: List[Any], kwargs: Dict[str, Any]) -> Tuple[str, Dict[str, Any], Dict[str, str]]:
    """(path under the sidecar, body, extra headers) of the provider's native chat request."""
    if provider == "openai":
        return LLM_PATH + "/openai/v1/chat/completions", dict(kwargs, model=model, messages=messages), {}
    if provider == "anthropic":
        body = dict(kwargs, model=model, messages=messages)
        body.setdefault("max_tokens", DEFAULT_ANTHROPIC_MAX_TOKENS)
        return LLM_PATH + "/anthropic/v1/messages", body, {"anthropic-version": ANTHROPIC_VERSION}
    api_version = kwargs.pop("api_version", None) or DEFAULT_AZURE_API_VERSION
    if not isinstance(api_version, str):
        raise BadRequestError("api_version must be a str such as %r" % DEFAULT_AZURE_API_VERSION)
    if not is_path_segment(model):
        raise BadRequestError("an Azure OpenAI model is its deployment's name: 1 to %d characters of A-Za-z0-9._-" % C.PATH_SEGMENT_MAX)
    path = "%s/azure_openai/openai/deployments/%s/chat/completions?%s" % (
        LLM_PATH, model, urllib.parse.urlencode({"api-version": api_version}))
    # The deployment fixes the model; the body names none (Azure ignores one).
    return path, dict(kwargs, messages=messages), {}


def _usage_numbers(provider: str, answer: Mapping[str, Any]) -> Dict[str, int]:
    """gen_ai.usage.* from the answer: input counts every input token, cached reads and cache
    writes included (as the sidecar's meter and the GenAI conventions count them)."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return {}
    number = lambda key: usage.get(key) if isinstance(usage.get(key), int) and not isinstance(usage.get(key), bool) else None
    out: Dict[str, int] = {}
    if provider == "anthropic":
        parts = [number("input_tokens"), number("cache_read_input_tokens"), number("cache_creation_input_tokens")]
        if parts[0] is not None:
            out["gen_ai.usage.input_tokens"] = sum(p or 0 for p in parts)
        if parts[1] is not None:
            out["gen_ai.usage.cache_read.input_tokens"] = parts[1]
        if parts[2] is not None:
            out["gen_ai.usage.cache_creation.input_tokens"] = parts[2]
        output = number("output_tokens")
    else:
        inputs = number("prompt_tokens")
        output = number("completion_tokens")
        if inputs is not None:
            out["gen_ai.usage.input_tokens"] = inputs
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if isinstance(cached, int) and not isinstance(cached, bool):
            out["gen_ai.usage.cache_read.input_tokens"] = cached
    if output is not None:
        out["gen_ai.usage.output_tokens"] = output
    return out


def _response_attributes(span: Any, provider: str, answer: Mapping[str, Any]) -> None:
    if isinstance(answer.get("model"), str):
        span.set_attribute("gen_ai.response.model", answer["model"])
    if isinstance(answer.get("id"), str):
        span.set_attribute("gen_ai.response.id", answer["id"])
    if provider == "anthropic":
        reasons = [answer["stop_reason"]] if isinstance(answer.get("stop_reason"), str) else []
    else:
        choices = answer.get("choices") if isinstance(answer.get("choices"), list) else []
        reasons = [c["finish_reason"] for c in choices if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)]
    if reasons:
        span.set_attribute("gen_ai.response.finish_reasons", reasons)
    for key, value in _usage_numbers(provider, answer).items():
        span.set_attribute(key, value)


#: Request parameters the GenAI conventions record (numbers only: never content).
_REQUEST_PARAMETERS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
}


def hexr_llm(
    provider: str,
    model: str,
    prompt: Optional[str] = None,
    messages: Optional[Sequence[Any]] = None,
    *,
    sidecar_url: Optional[str] = None,
    identity: Union[JwtSource, str, "os.PathLike[str]", None] = None,
    timeout: float = DEFAULT_LLM_TIMEOUT_SECONDS,
    **kwargs: Any,
) -> Dict[str, Any]:
    """One chat call to `provider` through the sidecar, with no key in the agent; returns the
    provider's answer, parsed, unchanged (a dict).

    provider: "openai" (chat completions: {model, messages, **kwargs}), "anthropic" (messages:
        {model, max_tokens (1024 unless given), messages, **kwargs}, anthropic-version 2023-06-01)
        or "azure_openai" (chat completions on the deployment named `model`; `api_version=`,
        default DEFAULT_AZURE_API_VERSION).
    prompt or messages, exactly one: a prompt is [{"role": "user", "content": prompt}].
    kwargs: the rest of the provider's request body (temperature=, system= for Anthropic, ...).
    sidecar_url, identity, timeout: as for VaultClient (timeout default 600 s).

    Non-streaming only: for streams use the provider clients, openai_client(),
    anthropic_client(), azure_openai_client() (stream=True works through the sidecar).

    Raises BadRequestError before any request for a bad provider, model or prompt; the sidecar's
    refusals as AccessDeniedError (403: model or provider not granted, identity revoked),
    BudgetExceededError (429, .retry_after), AuthenticationError (no identity, 401),
    BadRequestError, CredentialError (502/503/504, the sidecar unreachable); the provider's own
    errors as ProviderError. One span per call (OpenTelemetry GenAI conventions), never with the
    prompt, messages or completion in it.
    """
    span_name = "chat %s" % model if isinstance(model, str) else "chat"
    with telemetry.tracer().start_as_current_span(
        span_name, kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False
    ) as span:
        started = time.perf_counter()
        try:
            if provider not in PROVIDERS:
                raise BadRequestError("provider must be one of %s" % ", ".join(PROVIDERS))
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.system", _GEN_AI_SYSTEM[provider])
            span.set_attribute("gen_ai.provider.name", _GEN_AI_PROVIDER[provider])
            span.set_attribute("hexr.llm.provider", provider)
            if not isinstance(model, str) or not model:
                raise BadRequestError("model must be a non-empty str")
            span.set_attribute("gen_ai.request.model", model)
            context = current_agent()
            if context is not None:
                span.set_attribute("hexr.agent", context.agent_name)
                span.set_attribute("hexr.tenant", context.tenant)
                span.set_attribute("hexr.process_role", context.process_role)
            if (prompt is None) == (messages is None):
                raise BadRequestError("give exactly one of prompt and messages")
            if prompt is not None and not isinstance(prompt, str):
                raise BadRequestError("prompt must be a str")
            if messages is not None and (isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable)):
                raise BadRequestError("messages must be a list of the provider's messages")
            if kwargs.get("stream"):
                raise BadRequestError("hexr_llm does not stream: use hexr.llm.openai_client() / anthropic_client() for stream=True")
            chat = [{"role": "user", "content": prompt}] if prompt is not None else list(messages or ())
            for key, attribute in _REQUEST_PARAMETERS.items():
                value = kwargs.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    span.set_attribute(attribute, value)
            path, body, headers = _request(provider, model, chat, dict(kwargs))
            if provider == "anthropic":
                span.set_attribute("gen_ai.request.max_tokens", body["max_tokens"])
            try:
                data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            except (TypeError, ValueError):
                raise BadRequestError("the request body is not JSON-serialisable") from None
            svid = _identity_source(identity)().fetch()
            span.set_attribute("hexr.spiffe_id", svid.spiffe_id)
            status, answer_headers, answer_body = _client(_sidecar_url(sidecar_url), timeout).request("POST", path, svid.token, data, retry=False, headers=headers)
            span.set_attribute("http.response.status_code", status)
            if not 200 <= status < 300:
                raise error_for(provider, status, answer_headers, answer_body)
            answer = _json(answer_body)
            if not isinstance(answer, dict):
                raise CredentialError("%s's answer through the sidecar is not a JSON object" % provider, status=502)
            _response_attributes(span, provider, answer)
        except HexrError as error:
            telemetry.mark_error(span, error)
            log.debug("hexr_llm %s %s: %s %s", provider, model, error.status, error.type)
            raise
        log.debug("hexr_llm %s %s: %d in %.0f ms", provider, model, status, (time.perf_counter() - started) * 1000.0)
        return answer


# ---- the provider clients -------------------------------------------------------------------------


def _import(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise MissingDependencyError(
            "the %s client needs the %s package: pip install 'hexr[%s]'" % (module, module, _EXTRA[module])
        ) from None


def _http_package(client_class: type) -> Any:
    """The HTTP library a provider client is built on (httpx, or httpx2 for newer releases): the
    package of the Client class its DefaultHttpxClient derives from."""
    for klass in client_class.__mro__:
        package = sys.modules.get(klass.__module__.split(".")[0])
        if klass.__name__ in ("Client", "AsyncClient") and isinstance(getattr(package, "Auth", None), type):
            return package
    raise MissingDependencyError("cannot find the HTTP library of %s" % client_class.__name__)


_auth_classes: Dict[str, type] = {}


def _svid_auth(package: Any, source: Callable[[], JwtSource]) -> Any:
    """An Auth of the client's HTTP library that sets `authorization: Bearer <JWT-SVID>` on every
    request, the SVID read at that moment: JWT-SVIDs live minutes, a client lives for hours."""
    cls = _auth_classes.get(package.__name__)
    if cls is None:

        class SvidAuth(package.Auth):  # type: ignore[misc, name-defined]
            def __init__(self, source: Callable[[], JwtSource]) -> None:
                self._source = source

            def sync_auth_flow(self, request):
                request.headers["authorization"] = "Bearer " + self._source().fetch().token
                yield request

            async def async_auth_flow(self, request):
                # In a worker thread (a Workload API fetch blocks), with this task's context.
                svid = await asyncio.to_thread(lambda: self._source().fetch())
                request.headers["authorization"] = "Bearer " + svid.token
                yield request

            def __repr__(self) -> str:
                return "SvidAuth()"

        cls = _auth_classes[package.__name__] = SvidAuth
    return cls(source)


def _client_options(
    provider: str, kwargs: Dict[str, Any], refused: Tuple[str, ...], http_client_class: type,
    sidecar_url: Optional[str], identity: Union[JwtSource, str, "os.PathLike[str]", None],
) -> Tuple[str, Dict[str, Any]]:
    for key in refused:
        if key in kwargs:
            raise BadRequestError("%s= is the sidecar's to set: the client goes to the sidecar, which adds the provider's key" % key)
    source = _identity_source(identity)
    source().fetch()  # no identity is an AuthenticationError here, not a retried connection error later
    auth = _svid_auth(_http_package(http_client_class), source)
    http_client = kwargs.pop("http_client", None)
    if http_client is None:
        http_client = http_client_class(auth=auth)
    else:
        http_client.auth = auth
    return "%s%s/%s" % (_sidecar_url(sidecar_url), LLM_PATH, provider), dict(kwargs, http_client=http_client)


def openai_client(*, sidecar_url: Optional[str] = None, identity: Union[JwtSource, str, "os.PathLike[str]", None] = None, **kwargs: Any):
    """An openai.OpenAI whose requests go to the sidecar's /v1/llm/openai/v1 with a fresh JWT-SVID
    each (an httpx Auth): chat completions, completions, responses and embeddings, streamed or not.
    kwargs: openai.OpenAI's (timeout=, max_retries=, http_client=, ...), but no api_key or base_url.
    Errors are openai's (openai.PermissionDeniedError for the sidecar's 403, RateLimitError for 429)."""
    openai = _import("openai")
    base, options = _client_options("openai", kwargs, ("api_key", "base_url"), openai.DefaultHttpxClient, sidecar_url, identity)
    # PLACEHOLDER_KEY: openai insists on a key; the sidecar strips it and adds the real one.
    return openai.OpenAI(api_key=PLACEHOLDER_KEY, base_url=base + "/v1", **options)


def async_openai_client(*, sidecar_url: Optional[str] = None, identity: Union[JwtSource, str, "os.PathLike[str]", None] = None, **kwargs: Any):
    """openai_client(), as an openai.AsyncOpenAI."""
    openai = _import("openai")
    base, options = _client_options("openai", kwargs, ("api_key", "base_url"), openai.DefaultAsyncHttpxClient, sidecar_url, identity)
    return openai.AsyncOpenAI(api_key=PLACEHOLDER_KEY, base_url=base + "/v1", **options)


def anthropic_client(*, sidecar_url: Optional[str] = None, identity: Union[JwtSource, str, "os.PathLike[str]", None] = None, **kwargs: Any):
    """An anthropic.Anthropic whose requests go to the sidecar's /v1/llm/anthropic with a fresh
    JWT-SVID each: messages, streamed or not. kwargs: anthropic.Anthropic's, but no api_key,
    auth_token or base_url."""
    anthropic = _import("anthropic")
    base, options = _client_options(
        "anthropic", kwargs, ("api_key", "auth_token", "base_url"), anthropic.DefaultHttpxClient, sidecar_url, identity)
    # PLACEHOLDER_KEY travels as x-api-key (some releases send it as Authorization, which the SVID
    # replaces); the sidecar strips it before adding the real one.
    return anthropic.Anthropic(api_key=PLACEHOLDER_KEY, base_url=base, **options)


def azure_openai_client(
    api_version: str = DEFAULT_AZURE_API_VERSION, *, sidecar_url: Optional[str] = None,
    identity: Union[JwtSource, str, "os.PathLike[str]", None] = None, **kwargs: Any,
):
    """An openai.AzureOpenAI whose requests go to the sidecar's /v1/llm/azure_openai (the sidecar
    knows the Azure resource and sets its Entra token): model= is the deployment.
    kwargs: openai.AzureOpenAI's, but no api_key, azure_ad_token(_provider), azure_endpoint or base_url.
    (hexr_tool("azure_openai") is the other way: straight to Azure with an Entra token of the agent's.)"""
    openai = _import("openai")
    base, options = _client_options(
        "azure_openai", kwargs, ("api_key", "azure_ad_token", "azure_ad_token_provider", "azure_endpoint", "base_url"),
        openai.DefaultHttpxClient, sidecar_url, identity)
    # PLACEHOLDER_KEY travels as api-key, which the sidecar strips.
    return openai.AzureOpenAI(api_key=PLACEHOLDER_KEY, azure_endpoint=base, api_version=api_version, **options)


# ---- usage ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """One row of GET /v1/llm/usage: what one identity spent on one model of one provider.
    input_tokens counts every input token (cached reads and cache writes included); cost is in
    nano-USD (1e-9 dollars)."""

    spiffe_id: str
    provider: str
    model: str
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_nanousd: int

    @property
    def cost_usd(self) -> float:
        return self.cost_nanousd / 1e9

    @classmethod
    def from_json(cls, row: Any) -> "UsageRow":
        if not isinstance(row, dict):
            raise ValueError
        values = {}
        for name, kind in _ROW_FIELDS:
            value = row.get(name, 0 if kind is int else None)
            if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError
            if kind is str and not isinstance(value, str):
                raise ValueError
            values[name] = value
        return cls(**values)

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


_ROW_FIELDS = (("spiffe_id", str), ("provider", str), ("model", str)) + tuple((name, int) for name in C.LLM_USAGE_COUNTS)


def usage(
    *, sidecar_url: Optional[str] = None, identity: Union[JwtSource, str, "os.PathLike[str]", None] = None,
    timeout: float = DEFAULT_USAGE_TIMEOUT_SECONDS,
) -> List[UsageRow]:
    """The sidecar's LLM meter (GET /v1/llm/usage): every identity's rows for an admin identity,
    the caller's own otherwise. Errors as for hexr_llm()'s sidecar refusals."""
    with telemetry.tracer().start_as_current_span("hexr.llm.usage", record_exception=False, set_status_on_exception=False) as span:
        try:
            svid = _identity_source(identity)().fetch()
            span.set_attribute("hexr.spiffe_id", svid.spiffe_id)
            status, headers, body = _client(_sidecar_url(sidecar_url), timeout).request("GET", USAGE_PATH, svid.token)
            span.set_attribute("http.response.status_code", status)
            if status != 200:
                error = error_for("the sidecar", status, headers, body)
                if isinstance(error, ProviderError):  # nothing beyond the sidecar answers this route
                    error = CredentialError("the sidecar answered HTTP %d" % status, status=status if status >= 500 else 502)
                raise error
            answer = _json(body)
            rows = answer.get("rows") if isinstance(answer, dict) else None
            if not isinstance(rows, list):
                raise CredentialError("the sidecar's usage answer has no rows", status=502)
            try:
                out = [UsageRow.from_json(row) for row in rows]
            except ValueError:
                raise CredentialError("the sidecar's usage answer has a malformed row", status=502) from None
            span.set_attribute("hexr.llm.usage.rows", len(out))
            return out
        except HexrError as error:
            telemetry.mark_error(span, error)
            raise


def _dollars(nanousd: int) -> str:
    """Dollars to the tenth of a cent (half up, in integers: no float rounding surprises); to the
    millionth under a tenth of a cent, where $0.000 would say it was free."""
    if nanousd == 0 or nanousd >= 500_000:
        mills = (nanousd + 500_000) // 1_000_000
        return "$%d.%03d" % divmod(mills, 1000)
    return "$0.%06d" % ((nanousd + 500) // 1000)


def _tokens(row_input: int, cached: int, output: int) -> str:
    cached_note = " (%s cached)" % format(cached, ",") if cached else ""
    return "%s input%s + %s output tokens" % (format(row_input, ","), cached_note, format(output, ","))


def cost_tree(rows: Iterable[UsageRow]) -> str:
    """The usage as one tree per agent, role by role, a leaf per model:

        Trace: content-crew
        ├── spiffe://…/content-crew/researcher
        │   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
        ...

        Total: $0.136

    Roles and models in the order of the rows. An agent is (trust domain, tenant, name): when two
    in the rows share a name, the title names the tenant and trust domain too. A model served by
    two providers for one role gets one leaf per provider, "(provider)" after its name. Rows whose
    SPIFFE ID is not an agent's are under "Trace: (other identities)" with their full ID."""
    agents: Dict[Tuple[str, str, str], Dict[str, Dict[Tuple[str, str], List[int]]]] = {}
    for row in rows:
        parsed = parse_agent_spiffe_id(row.spiffe_id)
        agent_key = (parsed.trust_domain, parsed.tenant, parsed.agent) if parsed else ("", "", "")
        label = "spiffe://…/%s/%s" % (parsed.agent, parsed.role) if parsed else row.spiffe_id
        models = agents.setdefault(agent_key, {}).setdefault(label, {})
        sums = models.setdefault((row.model, row.provider), [0, 0, 0, 0])
        for i, value in enumerate((row.input_tokens, row.cached_input_tokens, row.output_tokens, row.cost_nanousd)):
            sums[i] += value
    names = [key[2] for key in agents if key[2]]
    trees = []
    for (trust_domain, tenant, agent), roles in agents.items():
        if not agent:
            title = "(other identities)"
        elif names.count(agent) > 1:
            title = "%s (%s, %s)" % (agent, tenant, trust_domain)
        else:
            title = agent
        lines = ["Trace: %s" % title]
        total = 0
        for r, (label, models) in enumerate(roles.items()):
            last_role = r == len(roles) - 1
            lines.append(("└── " if last_role else "├── ") + label)
            indent = "    " if last_role else "│   "
            model_names = [m for m, _ in models]
            for m, ((model, provider), (inputs, cached, outputs, cost)) in enumerate(models.items()):
                name = "%s (%s)" % (model, provider) if model_names.count(model) > 1 else model
                branch = "└── " if m == len(models) - 1 else "├── "
                lines.append("%s%s%s: %s (%s)" % (indent, branch, name, _tokens(inputs, cached, outputs), _dollars(cost)))
                total += cost
        lines.append("")
        lines.append("Total: %s" % _dollars(total))
        trees.append("\n".join(lines) + "\n")
    return "\n".join(trees)
