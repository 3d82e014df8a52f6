"""Hexr Vault: secrets scoped by the agent's SPIFFE identity, through the pod's sidecar.

    from hexr import hexr_agent
    from hexr.vault import VaultClient, secrets_batch

    @hexr_agent(name="my-agent", tenant="acme-corp")
    def main():
        vault = VaultClient()
        vault.put("OPENAI_API_KEY", "sk-...")                    # agent-level: every role
        vault.put("RESEARCH_DB_KEY", "...", scope="researcher")  # the researcher role only
        key = vault.get("OPENAI_API_KEY")

    @hexr_agent(name="my-agent", tenant="acme-corp")
    @secrets_batch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])      # one round trip
    def run(OPENAI_API_KEY: str, ANTHROPIC_API_KEY: str): ...

The wire is docs/vault-api.md: {HEXR_SIDECAR_URL}/v1/secrets with the JWT-SVID as
`Authorization: Bearer`, over the same HTTP client as the credential exchange (hexr.sidecar). The
caller's SPIFFE ID fixes its namespace (trust domain, tenant, agent); the vault decides, the SDK
only refuses what the vault would refuse anyway (a bad name, scope, version or value) before any
network call, with a BadRequestError (a ValueError).

A value is never in a repr, an exception, a log line or a span: spans carry the operation, the
name(s), the scope, the version and the outcome (the HTTP status) only. The client keeps no value:
each get asks the vault.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

from . import _contract as C
from . import telemetry
from .context import current_agent
from .contract import is_path_segment, is_secret_name
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    HexrError,
    SecretNotFoundError,
    from_vault_response,
)
from .identity import JwtSource, default_source, source_for_file
from .sidecar import DEFAULT_SIDECAR_URL, DEFAULT_TIMEOUT_SECONDS, SidecarClient

__all__ = [
    "VaultClient",
    "secrets_batch",
    "AccessDeniedError",
    "SecretNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "CredentialError",
    "HexrError",
    "AGENT_SCOPE",
    "Secrets",
]

log = logging.getLogger("hexr.vault")

#: The scope the vault reports for an agent-level secret (every role of the agent).
AGENT_SCOPE = "*"

F = TypeVar("F", bound=Callable[..., Any])

_NAME_RULE = "1 to %d characters of A-Za-z0-9_.-, starting with a letter or a digit" % C.VAULT_NAME_MAX
_SCOPE_RULE = (
    "a role name, 1 to %d characters of A-Za-z0-9._- (not '.' or '..'); leave it out for an agent-level secret"
    % C.PATH_SEGMENT_MAX
)


# ---- client-side checks: what the vault would refuse with 400/413, refused before any request ----


def _check_name(name: object) -> str:
    # The name is not echoed: a value passed where a name goes must not end up in the error.
    if not isinstance(name, str):
        raise BadRequestError("a secret name must be a str (%s given)" % type(name).__name__)
    if not is_secret_name(name):
        raise BadRequestError("a secret name must be %s (the one given has %d characters)" % (_NAME_RULE, len(name)))
    return name


def _check_scope(scope: object) -> Optional[str]:
    if scope is None:
        return None
    if not isinstance(scope, str) or not is_path_segment(scope):
        raise BadRequestError("scope must be %s" % _SCOPE_RULE)
    return scope


def _check_version(version: object) -> Optional[int]:
    if version is None:
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadRequestError("version must be a positive int (versions count from 1)")
    return version


def _value_body(value: object) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError("a secret value must be a str (%s given)" % type(value).__name__)
    try:
        size: Optional[int] = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        size = None  # raised below, not here: the UnicodeEncodeError holds the value (.object)
    if size is None:
        raise BadRequestError("a secret value must be valid Unicode (it holds a lone surrogate)")
    if size > C.VAULT_MAX_VALUE_BYTES:
        raise BadRequestError(
            "a secret value is at most %d bytes of UTF-8 (this one is %d)" % (C.VAULT_MAX_VALUE_BYTES, size), status=413
        )
    return json.dumps({"value": value}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _check_names(names: object) -> List[str]:
    """A batch: 1 to max_batch_names distinct valid names, in the order given (duplicates dropped)."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise BadRequestError("names must be a list of secret names, not a %s" % type(names).__name__)
    out = list(dict.fromkeys(_check_name(name) for name in names))
    if not 1 <= len(out) <= C.VAULT_MAX_BATCH_NAMES:
        raise BadRequestError("a batch names 1 to %d secrets (%d given)" % (C.VAULT_MAX_BATCH_NAMES, len(out)))
    return out


# ---- answers --------------------------------------------------------------------------------------


def _malformed(what: str) -> CredentialError:
    return CredentialError("the vault's answer is not %s" % what, status=502)


def _json_object(body: bytes, what: str) -> dict:
    try:
        answer = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        # Raised outside the handler: a JSONDecodeError keeps the whole body (.doc), which may
        # hold a value, and must not ride along as the new error's __context__.
        answer = None
    if not isinstance(answer, dict):
        raise _malformed(what)
    return answer


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Secrets(Dict[str, str]):
    """What get_many() returns: a dict of name -> value (in the order asked for) whose repr() and
    str() name the secrets but show no value, so that a careless print or log line of it leaks
    nothing. The values are there for the code that reads them (secrets["NAME"])."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secrets(%r, values hidden)" % (list(self),)

    __str__ = __repr__


class VaultClient:
    """The vault's secrets for the calling identity (docs/vault-api.md).

    sidecar_url: default HEXR_SIDECAR_URL, else http://127.0.0.1:15080.
    identity: a JwtSource or a JWT-SVID file path; default, at each call, the running agent's
        (`@hexr_agent(identity=...)`), else the process's (SPIFFE_ENDPOINT_SOCKET, then
        HEXR_JWT_SVID_FILE), exactly as hexr_tool() and get_credentials() find it.
    timeout: seconds per request.

    Errors: BadRequestError (a ValueError) for a bad name, scope, version or value, before any
    request, and for the vault's 400/405/409/413; AccessDeniedError (a CredentialError) for 403;
    SecretNotFoundError for 404; AuthenticationError for no identity or 401; CredentialError for
    the vault unavailable (503) or the sidecar unreachable.
    """

    def __init__(
        self,
        sidecar_url: Optional[str] = None,
        identity: Union[JwtSource, str, "os.PathLike[str]", None] = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        url = sidecar_url or os.environ.get("HEXR_SIDECAR_URL") or DEFAULT_SIDECAR_URL
        self._http = SidecarClient(url, timeout)
        if identity is not None and not isinstance(identity, JwtSource):
            identity = source_for_file(os.fspath(identity))
        self._identity: Optional[JwtSource] = identity

    @property
    def sidecar_url(self) -> str:
        return self._http.url

    @property
    def timeout(self) -> float:
        return self._http.timeout

    def __repr__(self) -> str:
        return "VaultClient(sidecar_url=%r, identity=%r)" % (self._http.url, self._identity)

    __str__ = __repr__

    def close(self) -> None:
        """Closes this thread's connection to the sidecar (others close with their threads)."""
        self._http.close()

    def __enter__(self) -> "VaultClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- operations -------------------------------------------------------------------------------

    def put(self, name: str, value: str, scope: Optional[str] = None) -> int:
        """Stores a new version of `name` (1 for a new secret) and returns its number.

        scope: None for an agent-level secret (every role of the agent), or a role ("researcher")
        for that role only. A secret's scope is fixed when it is created: a put naming another
        scope is a BadRequestError (409); a caller outside the secret's scope gets AccessDeniedError.
        """

        def run(call: _Call) -> int:
            _check_name(name)
            checked_scope = _check_scope(scope)
            body = _value_body(value)
            call.set_attribute("hexr.vault.name", name)
            call.set_attribute("hexr.vault.scope", checked_scope or AGENT_SCOPE)
            query = "?scope=" + checked_scope if checked_scope else ""
            # Not retried on a closed kept-alive connection: a PUT that did arrive made a version.
            answer = self._send(call, "PUT", "/" + name + query, body, 201, retry=False, value=value)
            answer = _json_object(answer, "a stored secret")
            version = answer.get("version")
            if answer.get("name") != name or not _is_version(version):
                raise _malformed("a stored secret")
            call.set_attribute("hexr.vault.version", version)
            return version

        return self._operation("put", run)

    def get(self, name: str, version: Optional[int] = None) -> str:
        """The value of `name`: its latest version, or `version`."""

        def run(call: _Call) -> str:
            _check_name(name)
            checked_version = _check_version(version)
            call.set_attribute("hexr.vault.name", name)
            if checked_version is not None:
                call.set_attribute("hexr.vault.version", checked_version)
            query = "?version=%d" % checked_version if checked_version is not None else ""
            answer = _json_object(self._send(call, "GET", "/" + name + query, None, 200), "a secret")
            value, got = answer.get("value"), answer.get("version")
            if answer.get("name") != name or not isinstance(value, str) or not _is_version(got):
                raise _malformed("a secret")
            if checked_version is not None and got != checked_version:
                raise _malformed("the version asked for")
            call.set_attribute("hexr.vault.version", got)
            if isinstance(answer.get("scope"), str):
                call.set_attribute("hexr.vault.scope", answer["scope"])
            return value

        return self._operation("get", run)

    def list(self) -> List[str]:
        """The names of the secrets this identity may read (agent-level, and its own role's),
        sorted. Never a value."""

        def run(call: _Call) -> List[str]:
            answer = _json_object(self._send(call, "GET", "", None, 200), "a list of secrets")
            entries = answer.get("secrets")
            if not isinstance(entries, list):
                raise _malformed("a list of secrets")
            names = []
            for entry in entries:
                if not isinstance(entry, dict) or not is_secret_name(entry.get("name")):
                    raise _malformed("a list of secrets")
                names.append(entry["name"])
            return sorted(names)

        return self._operation("list", run)

    def delete(self, name: str) -> None:
        """Deletes `name`, every version of it."""

        def run(call: _Call) -> None:
            _check_name(name)
            call.set_attribute("hexr.vault.name", name)
            # Not retried: a DELETE that did arrive would answer 404 the second time.
            self._send(call, "DELETE", "/" + name, None, 204, retry=False)

        self._operation("delete", run)

    def get_many(self, names: Iterable[str]) -> "Secrets":
        """{name: value} for every name, in one round trip (POST /v1/secrets/_batch), in the
        order given (duplicates dropped), as a Secrets dict (its repr shows no value). All or
        nothing: one missing name is SecretNotFoundError, one denied AccessDeniedError, and no
        value is returned at all."""

        def run(call: _Call) -> Secrets:
            wanted = _check_names(names)
            call.set_attribute("hexr.vault.names", wanted)
            body = json.dumps({"names": wanted}, separators=(",", ":")).encode("utf-8")
            answer = _json_object(self._send(call, "POST", "/" + C.VAULT_BATCH_NAME, body, 200), "a batch of secrets")
            secrets = answer.get("secrets")
            if not isinstance(secrets, dict) or set(secrets) != set(wanted):
                raise _malformed("the batch asked for")
            out = Secrets()
            for name in wanted:
                entry = secrets[name]
                if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
                    raise _malformed("the batch asked for")
                out[name] = entry["value"]
            return out

        return self._operation("get_many", run)

    # ---- the one path every operation takes -------------------------------------------------------

    def _source(self) -> JwtSource:
        if self._identity is not None:
            return self._identity
        context = current_agent()
        if context is not None and context.identity is not None:
            return context.identity
        return default_source()

    def _operation(self, operation: str, run: Callable[["_Call"], Any]) -> Any:
        """Runs one operation in its span hexr.vault.{operation}, and logs its outcome: the one
        place every operation goes through, and it never sees a value."""
        started = time.perf_counter()
        # No exception event and no "Type: message" status: the span says what mark_error says.
        with telemetry.tracer().start_as_current_span(
            telemetry.VAULT_SPAN_PREFIX + operation, record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("hexr.vault.operation", operation)
            call = _Call(span)
            try:
                result = run(call)
            except HexrError as error:
                outcome = _outcome(error, call.status)
                span.set_attribute("hexr.vault.outcome", outcome)
                telemetry.mark_error(span, error)
                log.debug("hexr vault %s: %s (%s %s)", operation, outcome, error.status, error.type)
                raise
            span.set_attribute("hexr.vault.outcome", "ok")
            log.debug("hexr vault %s: ok (%d) in %.1f ms", operation, call.status, (time.perf_counter() - started) * 1000.0)
            return result

    def _send(
        self, call: "_Call", method: str, path: str, body: Optional[bytes], expected: int, *, retry: bool = True,
        value: Optional[str] = None,
    ) -> bytes:
        token = self._source().fetch().token
        status, _, data = self._http.request(method, C.VAULT_SECRETS_PATH + path, token, body, retry=retry)
        call.status = status
        call.span.set_attribute("hexr.vault.status", status)
        if status == expected:
            return data
        if 200 <= status < 300:
            raise CredentialError("the vault answered HTTP %d where %d was expected" % (status, expected), status=502)
        error = from_vault_response(status, data)
        if value is not None and len(value) >= _ECHO_MIN and value in error.message:
            error = from_vault_response(status, b"")
        raise error


#: The vault never echoes a value (its messages are built from names and numbers); should one ever
#: repeat the value put, the SDK passes on a fixed text instead. Not for values shorter than this:
#: they are found inside ordinary words ("x" in "exists") and would only cost the real message.
_ECHO_MIN = 4


class _Call:
    """One operation in flight: its span, and the HTTP status once the sidecar answered."""

    __slots__ = ("span", "status")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.status: Optional[int] = None

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)


def _outcome(error: HexrError, status: Optional[int]) -> str:
    """What a span says of a failed operation (hexr.vault.outcome)."""
    if status is None:  # nothing answered: refused locally, no identity, or the sidecar unreachable
        if isinstance(error, BadRequestError):
            return "invalid"
        if isinstance(error, AuthenticationError):
            return "unauthenticated"
        return "unavailable"
    if 200 <= status < 300:
        return "malformed"
    return {401: "unauthenticated", 403: "denied", 404: "not_found", 409: "conflict", 413: "too_large"}.get(
        status, "rejected" if status < 500 else "unavailable"
    )


# ---- @secrets_batch -------------------------------------------------------------------------------


def secrets_batch(names: Iterable[str], *, client: Optional[VaultClient] = None) -> Callable[[F], F]:
    """Injects the named secrets as keyword arguments, fetched in ONE round trip
    (VaultClient.get_many) at each call, for a sync or an async function:

        @hexr_agent(name="my-agent", tenant="acme-corp")      # outermost: the identity is set first
        @secrets_batch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
        def main(OPENAI_API_KEY: str, ANTHROPIC_API_KEY: str): ...

    An argument the caller passes (by keyword or position) is not fetched and not overwritten;
    when every one is passed, there is no request at all. A missing or denied secret raises
    SecretNotFoundError / AccessDeniedError and the function is not called.

    Each name must be a parameter of the function (or the function takes **kwargs, for names that
    are not Python identifiers such as "db.password"): checked when decorating, as are the names.
    client: the VaultClient to use; default a new VaultClient() per call (HEXR_SIDECAR_URL, and the
    identity of the agent the call runs in).
    """
    wanted = _check_names(names)

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        params = signature.parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name in wanted:
            param = params.get(name)
            if param is None and not takes_kwargs:
                raise TypeError("secrets_batch: %s() has no parameter %r (and no **kwargs)" % (fn.__name__, name))
            if param is not None and param.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                raise TypeError("secrets_batch: %s() cannot take %r by keyword" % (fn.__name__, name))

        def missing(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> List[str]:
            given = signature.bind_partial(*args, **kwargs).arguments
            return [name for name in wanted if name not in given and name not in kwargs]

        def fetch(names_: List[str]) -> Dict[str, str]:
            if client is not None:
                return client.get_many(names_)
            with VaultClient() as vault:
                return vault.get_many(names_)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                todo = missing(args, kwargs)
                if todo:
                    # In a worker thread (the request blocks), with this task's context (the agent's identity).
                    kwargs.update(await asyncio.to_thread(fetch, todo))
                return await fn(*args, **kwargs)

            async_wrapper.hexr_secrets = tuple(wanted)  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            todo = missing(args, kwargs)
            if todo:
                kwargs.update(fetch(todo))
            return fn(*args, **kwargs)

        wrapper.hexr_secrets = tuple(wanted)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
