"""The exchange with the pod's sidecar, and the in-process L1 in front of it.

    POST {HEXR_SIDECAR_URL}/exchange   {"service": ..., "region": ...}
    Authorization: Bearer <JWT-SVID>

L1 holds each answer, keyed by (SPIFFE ID, service, region), while
now < expires_at - HEXR_L1_REFRESH_BUFFER_SECONDS (600 s by default, the seeds' 10 minutes). The
SPIFFE ID is the `sub` of the JWT-SVID presented, so two identities (two roles) in one process
never share an entry. It is bounded (HEXR_L1_MAX_ENTRIES, 256 by default, least recently used
out first), thread-safe, and a key is exchanged by one thread at a time: concurrent misses for one
key wait for that one exchange.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from . import clock
from .contract import HEADERS, credential_key
from .errors import CredentialError, from_response
from .identity import JwtSource

DEFAULT_SIDECAR_URL = "http://127.0.0.1:15080"
DEFAULT_L1_BUFFER_SECONDS = 600.0
DEFAULT_L1_MAX_ENTRIES = 256
DEFAULT_TIMEOUT_SECONDS = 10.0


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Credential:
    """One exchange answer. The secret part is reachable only through `secret`; it is in no repr."""

    service: str
    provider: str
    region: str
    spiffe_id: str
    expires_at: float
    expiration: Optional[str]
    #: where the sidecar found it: x-hexr-cache (L1, L2, L3, L1-stale)
    sidecar_tier: Optional[str]
    secret: Mapping[str, str] = field(repr=False, compare=False)

    def seconds_left(self) -> float:
        return self.expires_at - clock.now()

    def __repr__(self) -> str:
        return "Credential(service=%r, region=%r, spiffe_id=%r, expires_at=%r)" % (
            self.service, self.region, self.spiffe_id, self.expires_at)


def parse_answer(body: bytes, headers: Mapping[str, str], service: str, spiffe_id: str) -> Credential:
    """The sidecar's 200 answer, checked: it must be for this service and identity."""
    try:
        answer = json.loads(body.decode("utf-8"))
        secret = answer["credentials"]
        if not isinstance(secret, dict) or not all(isinstance(v, str) for v in secret.values()):
            raise ValueError
        expires_at = answer.get("expires_at")
        header_expiry = headers.get(HEADERS["expires_at"])
        if header_expiry and header_expiry.isdigit():
            expires_at = int(header_expiry)
        if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool) or expires_at <= 0:
            raise ValueError
        region, provider = answer["region"], answer["provider"]
        if not isinstance(region, str) or not isinstance(provider, str):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise CredentialError("the sidecar's answer is not a credential", status=502) from None
    if answer.get("service") != service or answer.get("spiffe_id") != spiffe_id:
        raise CredentialError("the sidecar answered for another service or identity", status=502)
    return Credential(
        service=service,
        provider=provider,
        region=region,
        spiffe_id=spiffe_id,
        expires_at=float(expires_at),
        expiration=answer.get("expiration") if isinstance(answer.get("expiration"), str) else None,
        sidecar_tier=headers.get(HEADERS["cache"]),
        secret=dict(secret),
    )


class SidecarClient:
    """HTTP to the sidecar's agent listener over one kept-alive connection per thread (stdlib
    http.client): POST /exchange for credentials, and the vault's /v1/secrets (hexr.vault)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CredentialError("HEXR_SIDECAR_URL is not an http(s) URL", status=503)
        self.url = url
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._base = parsed.path.rstrip("/") or ""
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _peer_closed(conn.sock):
            self._drop()  # the sidecar closed the idle connection: do not send on it
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def post(self, token: str, service: str, region: str) -> Tuple[int, Dict[str, str], bytes]:
        """POST /exchange {"service", "region"}."""
        body = json.dumps({"service": service, "region": region}).encode("utf-8")
        return self.request("POST", "/exchange", token, body)

    def request(
        self,
        method: str,
        path: str,
        token: str,
        body: Optional[bytes] = None,
        *,
        retry: bool = True,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Tuple[int, Dict[str, str], bytes]:
        """One request to {HEXR_SIDECAR_URL}{path} (path may carry a query) with the JWT-SVID as
        `Authorization: Bearer`, and a JSON body if one is given. Answers (status, headers with
        lower-case names, body). Transport failures are CredentialError 503 (504 for a timeout).

        retry: send once more, on a fresh connection, when a kept-alive one turns out closed. Off
        for requests that must not be repeated (a vault PUT makes a new version; a DELETE repeated
        after it succeeded would answer 404).

        headers: more request headers (a provider's own, such as anthropic-version)."""
        sent = {"Authorization": "Bearer " + token, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        target = self._base + path
        for attempt in (1, 2):
            conn = self._connection()
            fresh = conn.sock is None
            try:
                conn.request(method, target, body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
                answer_headers = {k.lower(): v for k, v in response.getheaders()}
                if response.will_close:
                    self._drop()
                return response.status, answer_headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine):
                self._drop()
                if fresh or attempt == 2 or not retry:
                    raise CredentialError("the sidecar closed the connection", status=503) from None
            except TimeoutError:
                self._drop()
                raise CredentialError("the sidecar did not answer in time", status=504) from None
            except OSError as error:
                self._drop()
                raise CredentialError(
                    "the sidecar at %s cannot be reached (%s)" % (self.url, type(error).__name__), status=503
                ) from None
        raise CredentialError("the sidecar cannot be reached", status=503)  # pragma: no cover

    def close(self) -> None:
        self._drop()


def _peer_closed(sock: socket.socket) -> bool:
    """Whether an idle kept-alive connection was closed by the other end: it is readable (EOF, or
    bytes nobody asked for) before anything was sent on it."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class L1Cache:
    """In-process credentials by (SPIFFE ID, service, region); see the module's docstring."""

    def __init__(self, max_entries: int = DEFAULT_L1_MAX_ENTRIES, buffer_seconds: float = DEFAULT_L1_BUFFER_SECONDS) -> None:
        self.max_entries = max(1, int(max_entries))
        self.buffer_seconds = float(buffer_seconds)
        self._entries: "OrderedDict[Tuple[str, str, str], Credential]" = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: Dict[Tuple[str, str, str], threading.Lock] = {}

    def get(self, key: Tuple[str, str, str], min_ttl: float = 0.0) -> Optional[Credential]:
        """The entry if it is servable: now < expires_at - max(buffer, min_ttl)."""
        now = clock.now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry.expires_at:
                del self._entries[key]
                return None
            if now >= entry.expires_at - max(self.buffer_seconds, min_ttl):
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: Tuple[str, str, str], credential: Credential) -> None:
        if clock.now() >= credential.expires_at - self.buffer_seconds:
            return  # would never be served
        with self._lock:
            self._entries[key] = credential
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._key_locks.pop(old, None)

    def key_lock(self, key: Tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._key_locks.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self):
        with self._lock:
            return list(self._entries.keys())


@dataclass(frozen=True)
class Resolution:
    credential: Credential
    #: "L1" for an in-process hit, else the sidecar's x-hexr-cache
    cache_tier: str
    #: "process" or "sidecar"
    source: str
    duration_ms: float


class Exchanger:
    """L1, then the sidecar. One per process (hexr.sidecar.exchanger()), rebuilt when the
    environment names another sidecar URL."""

    def __init__(self, url: str, timeout: float, cache: L1Cache) -> None:
        self.client = SidecarClient(url, timeout)
        self.cache = cache
        #: exchanges sent to the sidecar (tests and the benchmark read it)
        self.sidecar_calls = 0

    def resolve(self, identity: JwtSource, service: str, region: str, min_ttl: float = 0.0, use_l1: bool = True) -> Resolution:
        started = time.perf_counter()
        svid = identity.fetch()
        key = (svid.spiffe_id, service, region)
        if use_l1:
            hit = self.cache.get(key, min_ttl)
            if hit is not None:
                return Resolution(hit, "L1", "process", (time.perf_counter() - started) * 1000.0)
        with self.cache.key_lock(key):
            if use_l1:
                hit = self.cache.get(key, min_ttl)
                if hit is not None:  # another thread exchanged meanwhile
                    return Resolution(hit, "L1", "process", (time.perf_counter() - started) * 1000.0)
            self.sidecar_calls += 1
            status, headers, body = self.client.post(svid.token, service, region)
            if status != 200:
                raise from_response(status, body)
            credential = parse_answer(body, headers, service, svid.spiffe_id)
            self.cache.put(key, credential)
        tier = credential.sidecar_tier if credential.sidecar_tier in ("L1", "L2", "L3", "L1-stale") else "L3"
        return Resolution(credential, tier, "sidecar", (time.perf_counter() - started) * 1000.0)


_exchanger: Optional[Exchanger] = None
_exchanger_lock = threading.Lock()
_cache = L1Cache(
    int(_env_float("HEXR_L1_MAX_ENTRIES", DEFAULT_L1_MAX_ENTRIES)),
    _env_float("HEXR_L1_REFRESH_BUFFER_SECONDS", DEFAULT_L1_BUFFER_SECONDS),
)


def l1_cache() -> L1Cache:
    """The process's in-process L1."""
    return _cache


def exchanger() -> Exchanger:
    """The process's exchanger for the sidecar named by HEXR_SIDECAR_URL now."""
    global _exchanger
    url = os.environ.get("HEXR_SIDECAR_URL") or DEFAULT_SIDECAR_URL
    timeout = _env_float("HEXR_EXCHANGE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    current = _exchanger
    if current is not None and current.client.url == url and current.client.timeout == timeout:
        return current
    with _exchanger_lock:
        if _exchanger is None or _exchanger.client.url != url or _exchanger.client.timeout != timeout:
            _exchanger = Exchanger(url, timeout, _cache)
        return _exchanger
