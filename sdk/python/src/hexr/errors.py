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


def _class_for(status: int, type_: Optional[str]):
    if type_ == "AuthenticationError" or (type_ is None and status == 401):
        return AuthenticationError
    if type_ == "BadRequest" or (type_ is None and status in C.ERROR_STATUSES["BadRequest"]):
        return BadRequestError
    return CredentialError


def from_response(status: int, body: bytes) -> HexrError:
    """The error for a sidecar answer other than 200: the contract's {"error": {type, message}}
    when the body is one, else a fixed message for the status. Nothing else of the body is used."""
    type_: Optional[str] = None
    message: Optional[str] = None
    try:
        error = json.loads(body.decode("utf-8")).get("error")
        if isinstance(error, dict) and error.get("type") in C.ERROR_TYPES and isinstance(error.get("message"), str):
            type_, message = error["type"], error["message"]
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    cls = _class_for(status, type_)
    if message is None:
        message = _GENERIC.get(status, "the sidecar answered HTTP %d" % status)
    return cls(message, status=status, type=type_ or cls.default_type)
