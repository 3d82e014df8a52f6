"""Where the process's JWT-SVID comes from.

1. The SPIFFE Workload API, when SPIFFE_ENDPOINT_SOCKET is set (py-spiffe's WorkloadApiClient,
   FetchJWTSVID for the audience HEXR_JWT_AUDIENCE, default "hexr-credential-injector"). The SVID
   is kept until 30 s before its `exp`, then fetched again.
2. Else a file, HEXR_JWT_SVID_FILE, that a helper (SPIRE's spiffe-helper, a sidecar, the test
   harness) keeps fresh. It is re-read whenever it changes (inode, size or mtime), and never used
   past the token's own `exp`: an expired token in the file is an AuthenticationError, not a
   request the sidecar would refuse anyway.
3. Else no identity: AuthenticationError.

A token is never logged, never put in an error, and never in a repr().
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Dict, Optional, Tuple

from . import clock
from .contract import parse_agent_spiffe_id
from .errors import AuthenticationError

DEFAULT_AUDIENCE = "hexr-credential-injector"
#: A Workload API SVID is fetched again this long before its exp.
WORKLOAD_API_REFRESH_SECONDS = 30.0


class JwtSvid:
    """A JWT-SVID: the token and what the SDK reads from it (unverified: the sidecar verifies)."""

    __slots__ = ("_token", "spiffe_id", "expires_at")

    def __init__(self, token: str, spiffe_id: str, expires_at: Optional[float]) -> None:
        self._token = token
        self.spiffe_id = spiffe_id
        self.expires_at = expires_at

    @property
    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "JwtSvid(spiffe_id=%r, expires_at=%r)" % (self.spiffe_id, self.expires_at)


def _claims(token: str) -> dict:
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    if not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return claims


def parse_jwt_svid(token: str, where: str) -> JwtSvid:
    """Reads sub and exp (no signature check: the sidecar's jwt_authn and the injector verify)."""
    token = token.strip()
    try:
        claims = _claims(token)
    except (ValueError, UnicodeError):
        raise AuthenticationError("%s does not hold a JWT-SVID" % where) from None
    sub = claims.get("sub")
    if parse_agent_spiffe_id(sub) is None:
        raise AuthenticationError("the JWT-SVID from %s does not name an agent SPIFFE ID" % where)
    exp = claims.get("exp")
    expires_at = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    if expires_at is None:
        raise AuthenticationError("the JWT-SVID from %s has no exp" % where)
    return JwtSvid(token, sub, expires_at)


class JwtSource:
    """Anything that gives the current JWT-SVID."""

    def fetch(self) -> JwtSvid:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def description(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class FileJwtSource(JwtSource):
    """A JWT-SVID in a file that something else keeps fresh."""

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._svid: Optional[JwtSvid] = None

    @property
    def description(self) -> str:
        return "the JWT-SVID file %s" % self.path

    def fetch(self) -> JwtSvid:
        try:
            st = os.stat(self.path)
        except OSError:
            raise AuthenticationError(
                "no SPIFFE identity: the JWT-SVID file %s cannot be read" % self.path
            ) from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            svid = self._svid
            if svid is None or stamp != self._stamp or (svid.expires_at is not None and svid.expires_at <= clock.now()):
                try:
                    with open(self.path, encoding="utf-8") as handle:
                        text = handle.read()
                except (OSError, UnicodeError):
                    raise AuthenticationError(
                        "no SPIFFE identity: the JWT-SVID file %s cannot be read" % self.path
                    ) from None
                svid = parse_jwt_svid(text, self.description)
                self._svid, self._stamp = svid, stamp
        if svid.expires_at is not None and svid.expires_at <= clock.now():
            raise AuthenticationError("the JWT-SVID in %s has expired" % self.path)
        return svid

    def __repr__(self) -> str:
        return "FileJwtSource(path=%r)" % self.path


class WorkloadApiJwtSource(JwtSource):
    """JWT-SVIDs from the SPIFFE Workload API (SPIRE agent), through py-spiffe."""

    def __init__(self, socket: str, audience: str = DEFAULT_AUDIENCE, timeout: float = 5.0) -> None:
        self.socket = socket
        self.audience = audience
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client = None
        self._svid: Optional[JwtSvid] = None

    @property
    def description(self) -> str:
        return "the SPIFFE Workload API at %s" % self.socket

    def _workload_client(self):
        if self._client is None:
            try:
                from spiffe import WorkloadApiClient
            except ImportError:
                from .errors import MissingDependencyError

                raise MissingDependencyError(
                    "SPIFFE_ENDPOINT_SOCKET is set but the spiffe package is not installed: pip install 'hexr[spiffe]'"
                ) from None
            try:
                self._client = WorkloadApiClient(socket_path=self.socket, default_timeout=self.timeout)
            except Exception as error:  # ArgumentError: no such socket, bad address
                raise AuthenticationError(
                    "no SPIFFE identity: the Workload API at %s is not usable (%s)" % (self.socket, type(error).__name__)
                ) from None
        return self._client

    def fetch(self) -> JwtSvid:
        with self._lock:
            svid = self._svid
            if svid is not None and svid.expires_at is not None and clock.now() < svid.expires_at - WORKLOAD_API_REFRESH_SECONDS:
                return svid
            client = self._workload_client()
            try:
                fetched = client.fetch_jwt_svid(audience={self.audience})
            except Exception as error:  # FetchJwtSvidError and friends; never their text (no token in it, but be safe)
                raise AuthenticationError(
                    "no SPIFFE identity: the Workload API did not give a JWT-SVID (%s)" % type(error).__name__
                ) from None
            svid = parse_jwt_svid(fetched.token, self.description)
            self._svid = svid
            return svid

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None

    def __repr__(self) -> str:
        return "WorkloadApiJwtSource(socket=%r, audience=%r)" % (self.socket, self.audience)


_sources: Dict[Tuple[str, str, str], JwtSource] = {}
_sources_lock = threading.Lock()


def source_for_file(path: str) -> FileJwtSource:
    key = ("file", os.path.abspath(os.fspath(path)), "")
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            source = _sources[key] = FileJwtSource(key[1])
        return source  # type: ignore[return-value]


def default_source() -> JwtSource:
    """The process's identity source, from the environment (read on every call)."""
    socket = os.environ.get("SPIFFE_ENDPOINT_SOCKET")
    if socket:
        audience = os.environ.get("HEXR_JWT_AUDIENCE") or DEFAULT_AUDIENCE
        key = ("workload", socket, audience)
        with _sources_lock:
            source = _sources.get(key)
            if source is None:
                source = _sources[key] = WorkloadApiJwtSource(socket, audience)
            return source
    path = os.environ.get("HEXR_JWT_SVID_FILE")
    if path:
        return source_for_file(path)
    raise AuthenticationError(
        "no SPIFFE identity available: set SPIFFE_ENDPOINT_SOCKET (the SPIFFE Workload API) or HEXR_JWT_SVID_FILE"
    )
