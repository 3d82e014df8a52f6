"""Azure clients with a TokenCredential that re-exchanges through the sidecar.

HexrTokenCredential implements azure.core's TokenCredential (get_token) and SupportsTokenInfo
(get_token_info, with refresh_on at the in-process L1's buffer): azure-core's bearer-token policy
asks again when the token nears expiry, and each ask returns the held token while it has more than
6 minutes left (MSAL and azure-core treat under 5 as expired), else resolves again (the in-process
L1, else the sidecar). The token's audience is the service's resource (contract azure_resources),
whatever scope is asked: the injector asked Entra for it.

Clients: BlobServiceClient(account_url, credential) (account_url= in kwargs, else
AZURE_STORAGE_ACCOUNT_URL), CosmosClient(url, credential) (url= in kwargs, else
AZURE_COSMOS_ENDPOINT), openai.AzureOpenAI(azure_ad_token_provider=...) (azure_endpoint= and
api_version= in kwargs, or openai's own AZURE_OPENAI_ENDPOINT and OPENAI_API_VERSION).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Optional

from azure.core.credentials import AccessToken, AccessTokenInfo

from .. import clock
from ..contract import AZURE_RESOURCES
from ..errors import CredentialError
from ..sidecar import Credential

#: a held token is handed out while it has more than this left
MIN_TTL_SECONDS = 6 * 60


class HexrTokenCredential:
    """An azure.core TokenCredential for one Hexr service."""

    def __init__(self, first: Optional[Credential], fetch: Callable[[float], Credential], service: str = "azure") -> None:
        self._fetch = fetch
        self._service = service
        self._lock = threading.Lock()
        self._held: Optional[Credential] = first
        #: how many times a token was resolved again (tests)
        self.refresh_count = 0

    @property
    def scope(self) -> Optional[str]:
        resource = AZURE_RESOURCES.get(self._service)
        return resource + "/.default" if resource else None

    def _current(self) -> Credential:
        with self._lock:
            held = self._held
            if held is None or clock.now() >= held.expires_at - MIN_TTL_SECONDS:
                self.refresh_count += 1
                held = self._held = self._fetch(MIN_TTL_SECONDS)
            return held

    @staticmethod
    def _token(credential: Credential) -> str:
        token = credential.secret.get("access_token")
        if not isinstance(token, str) or not token:
            raise CredentialError("the sidecar's answer holds no access token", status=502)
        return token

    def _expires_on(self, credential: Credential) -> int:
        # azure-core compares with time.time(): give it the expiry on the wall clock, so a test that
        # advances hexr.clock sees the SDK ask again as the real one would.
        return int(credential.expires_at - clock.offset())

    def get_token(self, *scopes: str, claims: Optional[str] = None, tenant_id: Optional[str] = None, enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        credential = self._current()
        return AccessToken(self._token(credential), self._expires_on(credential))

    def get_token_info(self, *scopes: str, options: Optional[Dict[str, Any]] = None) -> AccessTokenInfo:
        credential = self._current()
        expires_on = self._expires_on(credential)
        return AccessTokenInfo(self._token(credential), expires_on, token_type="Bearer", refresh_on=expires_on - MIN_TTL_SECONDS)

    def close(self) -> None:
        pass

    def __enter__(self) -> "HexrTokenCredential":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "HexrTokenCredential(service=%r)" % self._service


def build(service: str, credential: Credential, fetch: Callable[[float], Credential], region: str, kwargs: Dict[str, Any]) -> Any:
    token_credential = HexrTokenCredential(credential, fetch, service)
    kwargs = dict(kwargs)
    if service == "azure_storage":
        from azure.storage.blob import BlobServiceClient

        account_url = kwargs.pop("account_url", None) or os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
        if not account_url:
            raise ValueError("hexr_tool('azure_storage') needs account_url=... or AZURE_STORAGE_ACCOUNT_URL")
        return BlobServiceClient(account_url=account_url, credential=token_credential, **kwargs)
    if service == "azure_cosmosdb":
        from azure.cosmos import CosmosClient

        url = kwargs.pop("url", None) or os.environ.get("AZURE_COSMOS_ENDPOINT")
        if not url:
            raise ValueError("hexr_tool('azure_cosmosdb') needs url=... or AZURE_COSMOS_ENDPOINT")
        return CosmosClient(url, credential=token_credential, **kwargs)
    if service == "azure_openai":
        import openai

        scope = token_credential.scope or ""
        client = openai.AzureOpenAI(azure_ad_token_provider=lambda: token_credential.get_token(scope).token, **kwargs)
        client.hexr_credential = token_credential  # type: ignore[attr-defined]
        return client
    raise AssertionError(service)  # pragma: no cover
