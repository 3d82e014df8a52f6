"""The SDK's errors. Each carries the contract's error `type`, a `message` and the HTTP `status`
(the sidecar's, or the one the SDK assigns to a local failure). No credential or token ever
appears in a message, in str() or in repr(): messages come from the sidecar's fixed texts (which
never hold one, docs/filter-contract.md "Errors") or from the SDK's own, and are scrubbed of
anything shaped like a token or an AWS key all the same."""

from __future__ import annotations

import json
import re
from typing import Optional

from . import _contract as C

# A JWT (three base64url parts, the first starting with '{"' encoded), AWS access key IDs, and
# long opaque runs (secret keys, session tokens, OAuth access tokens).
_SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"
    r"|[A-Za-z0-9+=_-]{40,}"
)
_MAX_MESSAGE = 300


def scrub(text: str) -> str:
    """Removes anything shaped like a credential and control characters; bounds the length."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(text))
    text = _SECRET_SHAPES.sub("[redacted]", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class HexrError(Exception):
    """Base of every error the SDK raises about identity or credentials."""

    default_type = "HexrError"
    default_status: Optional[int] = None

    def __init__(self, message: str, *, status: Optional[int] = None, type: Optional[str] = None) -> None:
        self.message = scrub(message)
        self.status = status if status is not None else self.default_status
        self.type = type or self.default_type
        super().__init__(self.message)

    def __str__(self) -> str:
        prefix = "%s %s" % (self.status, self.type) if self.status is not None else self.type
        return "%s: %s" % (prefix, self.message)

    def __repr__(self) -> str:
        return "%s(status=%r, type=%r, message=%r)" % (type(self).__name__, self.status, self.type, self.message)

    def __reduce__(self):  # picklable (multiprocessing, concurrent.futures)
        return (_rebuild, (type(self), self.message, self.status, self.type))


def _rebuild(cls, message, status, type_):
    return cls(message, status=status, type=type_)


class AuthenticationError(HexrError):
    """No SPIFFE identity: none available to this process (no Workload API socket, no JWT-SVID
    file, an expired one), or the sidecar did not accept it (401)."""

    default_type = "AuthenticationError"
    default_status = 401


class CredentialError(HexrError):
    """The exchange failed: the service is not in the agent's resources, policy denied it (403),
    too many keys (429), the injector or the cloud failed (502/503/504), or the sidecar could not
    be reached."""

    default_type = "CredentialError"
    default_status = 403


class BadRequestError(HexrError, ValueError):
    """The request itself is wrong: not a service of the contract's grammar, a malformed region
    (caught before any network call), or the sidecar's 400/404/405/413/415."""

    default_type = "BadRequest"
    default_status = 400


class AccessDeniedError(CredentialError):
    """The vault refused this identity a secret (403): the secret is scoped to another role of the
    agent, the identity is revoked, or the vault does not trust the caller. A CredentialError, so
    code that handles denials of credentials handles denials of secrets too."""

    default_type = "CredentialError"
    default_status = 403


class SecretNotFoundError(BadRequestError, LookupError):
    """No such secret, or no such version of it, in the caller's namespace (404). The vault
    answers a name that exists only in another agent's or tenant's namespace the same way.

    Its base is BadRequestError because the contract types a 404 as BadRequest (code written for
    that mapping still catches it); it is also a LookupError, as a missing key of a mapping is."""

    default_type = "BadRequest"
    default_status = 404


class MissingDependencyError(HexrError, ImportError):
    """hexr_tool() needs a provider SDK that is not installed (install the matching extra)."""

    default_type = "MissingDependency"


# The sidecar's fixed message for a service outside the caller's resources (docs/filter-contract.md).
NOT_IN_RESOURCES = "the service is not in this agent's resources"

_GENERIC = {
    400: "the sidecar refused the request",
    401: "the sidecar did not accept the identity",
    403: "the credential exchange was denied by policy",
    429: "too many credential keys for this identity",
    502: "the credential exchange failed upstream",
    503: "the credential injector is unavailable",
    504: "the credential injector did not answer in time",
}


# The vault's statuses (docs/vault-api.md "Errors"), for a body that is not a contract error.
_VAULT_GENERIC = {
    400: "the vault refused the request",
    401: "the sidecar or the vault did not accept the identity",
    403: "access to the secret was denied",
    404: "no such secret",
    405: "the vault does not allow this method here",
    409: "the secret exists with another scope",
    413: "the value or the request is too large",
    415: "the vault accepts only application/json",
    503: "the vault is unavailable",
}


def _class_for(status: int, type_: Optional[str]):
    if type_ == "AuthenticationError" or (type_ is None and status == 401):
        return AuthenticationError
    if type_ == "BadRequest" or (type_ is None and status in C.ERROR_STATUSES["BadRequest"]):
        return BadRequestError
    return CredentialError


def _contract_error(body: bytes):
    """(type, message) of the contract's {"error": {type, message}}, else (None, None)."""
    try:
        error = json.loads(body.decode("utf-8")).get("error")
        if isinstance(error, dict) and error.get("type") in C.ERROR_TYPES and isinstance(error.get("message"), str):
            return error["type"], error["message"]
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    return None, None


def from_response(status: int, body: bytes) -> HexrError:
    """The error for a sidecar answer other than 200: the contract's {"error": {type, message}}
    when the body is one, else a fixed message for the status. Nothing else of the body is used."""
    type_, message = _contract_error(body)
    cls = _class_for(status, type_)
    if message is None:
        message = _GENERIC.get(status, "the sidecar answered HTTP %d" % status)
    return cls(message, status=status, type=type_ or cls.default_type)


def from_vault_response(status: int, body: bytes) -> HexrError:
    """The error for an answer of the vault's routes (through the sidecar) that is not the
    operation's success: 403 is AccessDeniedError and 404 SecretNotFoundError; every other
    status maps as from_response() maps it (401 AuthenticationError; 400, 405, 409, 413, 415
    BadRequestError; 429 and 5xx CredentialError). The message is the contract error's (the vault
    never puts a value in one), else a fixed text for the status."""
    type_, message = _contract_error(body)
    if status == 403:
        cls = AccessDeniedError
    elif status == 404:
        cls = SecretNotFoundError
    else:
        cls = _class_for(status, type_)
    if message is None:
        message = _VAULT_GENERIC.get(status, "the vault answered HTTP %d" % status)
    return cls(message, status=status, type=type_ or cls.default_type)
