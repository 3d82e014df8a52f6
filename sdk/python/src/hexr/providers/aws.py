"""boto3 clients whose credentials refresh themselves through the sidecar.

Each client gets a botocore session of its own whose only credential provider is Hexr's: no
environment variable, profile or instance role can slip in. Its credentials are botocore
RefreshableCredentials: when botocore wants new ones (15 minutes before expiry advisory, 10
mandatory), they are resolved again (the in-process L1, else the sidecar) asking for at least
16 minutes of life, so an L1 entry botocore would reject is never served to it. botocore reads
hexr.clock for "now", so tests can move time.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Callable, Dict, Optional

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from .. import clock
from ..errors import BadRequestError
from ..sidecar import Credential

#: what a refresh asks for: botocore's advisory window (15 min) plus a minute
MIN_TTL_SECONDS = 16 * 60

_available: Optional[set] = None
_available_lock = threading.Lock()


def boto3_service_name(service: str, name: str) -> str:
    """aws_{name} -> the boto3 service: the name itself, else with '_' as '-' (aws_sso_oidc -> sso-oidc)."""
    global _available
    with _available_lock:
        if _available is None:
            _available = set(boto3.session.Session().get_available_services())
    for candidate in (name, name.replace("_", "-")):
        if candidate in _available:
            return candidate
    raise BadRequestError("boto3 has no service named %r (from %r)" % (name, service))


def _metadata(credential: Credential) -> Dict[str, str]:
    secret = credential.secret
    try:
        return {
            "access_key": secret["AccessKeyId"],
            "secret_key": secret["SecretAccessKey"],
            "token": secret["SessionToken"],
            "expiry_time": datetime.datetime.fromtimestamp(credential.expires_at, tz=datetime.timezone.utc).isoformat(),
        }
    except KeyError:
        from ..errors import CredentialError

        raise CredentialError("the sidecar's answer holds no AWS credentials", status=502) from None


class HexrCredentialProvider(CredentialProvider):
    METHOD = "hexr"
    CANONICAL_NAME = "Hexr"

    def __init__(self, first: Credential, fetch: Callable[[float], Credential]) -> None:
        super().__init__()
        self._first: Optional[Credential] = first
        self._fetch = fetch

    def _refresh(self) -> Dict[str, str]:
        return _metadata(self._fetch(MIN_TTL_SECONDS))

    def load(self) -> RefreshableCredentials:
        first, self._first = self._first, None
        metadata = _metadata(first) if first is not None else self._refresh()
        return RefreshableCredentials(
            access_key=metadata["access_key"],
            secret_key=metadata["secret_key"],
            token=metadata["token"],
            expiry_time=datetime.datetime.fromisoformat(metadata["expiry_time"]),
            refresh_using=self._refresh,
            method=self.METHOD,
            time_fetcher=clock.utcnow,
        )


def session(credential: Credential, fetch: Callable[[float], Credential], region: str) -> boto3.session.Session:
    """A boto3 Session whose only credentials are Hexr's for this service."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([HexrCredentialProvider(credential, fetch)]))
    return boto3.session.Session(botocore_session=core, region_name=region)


def build(how: str, what: str, credential: Credential, fetch: Callable[[float], Credential], region: str, kwargs: Dict[str, Any]) -> Any:
    s = session(credential, fetch, region)
    if how == "resource":
        return s.resource(what, **kwargs)
    return s.client(what, **kwargs)
