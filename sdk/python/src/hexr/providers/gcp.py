"""Google clients with credentials whose refresh() re-exchanges through the sidecar.

HexrGoogleCredentials is a google.auth.credentials.Credentials: google-auth calls refresh() when
the token is missing or within its refresh threshold (3 min 45 s) of expiry; refresh() resolves
again (the in-process L1, else the sidecar) asking for at least 5 minutes of life. Expiry is
judged on hexr.clock, so tests can move time.

The project: `project=` in kwargs, else GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT or HEXR_GCP_PROJECT.
Vertex AI is google-genai's Client(vertexai=True, project, location=region, credentials): see the
package README for why that package.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Callable, Dict, Optional

import google.auth.credentials
from google.auth.credentials import TokenState

from .. import clock
from ..errors import CredentialError
from ..sidecar import Credential

#: what a refresh asks for: google-auth's refresh threshold (225 s) plus a margin
MIN_TTL_SECONDS = 5 * 60
_THRESHOLD = datetime.timedelta(minutes=3, seconds=45)


class HexrGoogleCredentials(google.auth.credentials.Credentials):
    """Access tokens for one Hexr service, from the sidecar."""

    def __init__(self, first: Optional[Credential], fetch: Callable[[float], Credential], service: str = "gcp") -> None:
        super().__init__()
        self._fetch = fetch
        self._service = service
        #: how many times refresh() ran (tests)
        self.refresh_count = 0
        if first is not None:
            self._take(first)

    def _take(self, credential: Credential) -> None:
        token = credential.secret.get("access_token")
        if not isinstance(token, str) or not token:
            raise CredentialError("the sidecar's answer holds no access token", status=502)
        self.token = token
        # google-auth compares naive UTC datetimes
        self.expiry = datetime.datetime.fromtimestamp(credential.expires_at, tz=datetime.timezone.utc).replace(tzinfo=None)

    def refresh(self, request: Any) -> None:
        self.refresh_count += 1
        self._take(self._fetch(MIN_TTL_SECONDS))

    def _now(self) -> datetime.datetime:
        return clock.utcnow().replace(tzinfo=None)

    @property
    def expired(self) -> bool:
        if not self.expiry:
            return False
        return self._now() >= self.expiry - _THRESHOLD

    @property
    def token_state(self) -> TokenState:
        if self.token is None:
            return TokenState.INVALID
        if self.expiry is None:
            return TokenState.FRESH
        now = self._now()
        if now >= self.expiry:
            return TokenState.INVALID
        if now >= self.expiry - _THRESHOLD:
            return TokenState.STALE
        return TokenState.FRESH

    def __repr__(self) -> str:
        return "HexrGoogleCredentials(service=%r, expiry=%r)" % (self._service, self.expiry)


def project_from(kwargs: Dict[str, Any]) -> Optional[str]:
    project = kwargs.pop("project", None)
    if project:
        return str(project)
    for name in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "HEXR_GCP_PROJECT"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def _need_project(service: str, project: Optional[str]) -> str:
    if not project:
        raise ValueError("hexr_tool(%r) needs a project: pass project=... or set GOOGLE_CLOUD_PROJECT" % service)
    return project


def build(service: str, credential: Credential, fetch: Callable[[float], Credential], region: str, region_given: bool, kwargs: Dict[str, Any]) -> Any:
    credentials = HexrGoogleCredentials(credential, fetch, service)
    kwargs = dict(kwargs)
    project = project_from(kwargs)
    if service == "gcp_storage":
        from google.cloud import storage

        # project=None (not the library's default marker): never ask a metadata server for one
        return storage.Client(project=project, credentials=credentials, **kwargs)
    if service == "gcp_bigquery":
        from google.cloud import bigquery

        if region_given:
            kwargs.setdefault("location", region)
        return bigquery.Client(project=_need_project(service, project), credentials=credentials, **kwargs)
    if service == "gcp_pubsub":
        from google.cloud import pubsub_v1

        return pubsub_v1.PublisherClient(credentials=credentials, **kwargs)
    if service == "gcp_vertexai":
        from google import genai

        return genai.Client(vertexai=True, project=_need_project(service, project), location=region, credentials=credentials, **kwargs)
    raise AssertionError(service)  # pragma: no cover - builder_for() only sends the four
