"""A loopback stand-in for the sidecar and Hexr Vault together, implementing docs/vault-api.md
strictly, in memory: what an agent sees on {HEXR_SIDECAR_URL}/v1/secrets.

Strict where the document is: the caller's identity from `Authorization: Bearer <JWT-SVID>` (no
identity → 401, as the sidecar answers), namespaces (trust domain, tenant, agent) and scopes
(agent-level `*` or one role), the exact routes and methods (405), names, scopes and versions
(400), exactly the documented query parameters and body fields (anything else → 400), JSON bodies
with `content-type: application/json` (415), value and body limits (413), a put that changes
the scope (409), out of scope (403), missing (404), all-or-nothing batches naming the failing
secret, `cache-control: no-store` on every answer and no body on 204.

Where the document leaves a choice, the fake takes the strict reading (the lead's e2e run against
the real vault confirms or corrects it):
- `scope` absent on a put is the agent-level scope `*` (as is `?scope=*`), so re-putting a
  role-level secret without its `scope=` is a 409;
- a put that would create a secret scoped to a role other than the caller's is a 403 (the caller
  is outside that secret's scope);
- a batch naming a secret twice is a 400; its first failing name, in request order, decides
  between 404 and 403;
- a query parameter the route does not document, or the same one twice, is a 400; a version over
  2^31 - 1 is a 400.
These are also the readings of the vault in this repository (vault/routes.ts, scope.ts, body.ts,
secrets.ts), checked against it when this stand-in was written. It is stricter in one place only:
a chunked body (no content-length) is a 400 here; the SDK always sends a content-length.

Not modelled: the vault's own JWT-SVID verification (the token is unsigned here), mTLS, audit.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Set, Tuple

SECRETS = "/v1/secrets"
BATCH = "_batch"
MAX_VALUE_BYTES = 65536
MAX_BATCH_NAMES = 64
#: A value of MAX_VALUE_BYTES JSON-escaped at worst (\u00XX for every byte), plus room: the real
#: vault's default (vault/config.ts DEFAULT_MAX_BODY_BYTES).
MAX_BODY_BYTES = 6 * MAX_VALUE_BYTES + 4096
MAX_VERSION = 2 ** 31 - 1

_NAME_FIRST = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_FIRST | set("_.-")
_SEGMENT_CHARS = _NAME_FIRST | set("._-")


def is_name(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 128 and value[0] in _NAME_FIRST and set(value) <= _NAME_CHARS


def is_role(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 128 and value not in (".", "..") and set(value) <= _SEGMENT_CHARS


def is_version(text: str) -> bool:
    return text.isdigit() and text.isascii() and not text.startswith("0")


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class Secret:
    scope: str
    #: (value, created_at) per version; version N is versions[N - 1]
    versions: List[Tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Caller:
    spiffe_id: str
    namespace: Tuple[str, str, str]
    role: str

    def may(self, secret: Secret) -> bool:
        return secret.scope == "*" or secret.scope == self.role


class Refusal(Exception):
    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message
        self.headers: Dict[str, str] = {}


def bad(message: str, status: int = 400) -> Refusal:
    return Refusal(status, "BadRequest", message)


class FakeVault:
    def __init__(self) -> None:
        #: namespace → name → Secret
        self.store: Dict[Tuple[str, str, str], Dict[str, Secret]] = {}
        #: every request: method, path (with its query), authorization, content_type, body (parsed
        #: JSON or raw bytes), the x-hexr-* headers the client sent, status
        self.requests: List[dict] = []
        self.revoked: Set[str] = set()
        #: answer 503 to everything (storage or the key-encryption key unavailable)
        self.unavailable = False
        #: close every connection right after answering, without saying so (a sidecar idle timeout)
        self.drop_connections = False
        #: replace the next answer: (status, headers, body)
        self.next_answer: Optional[Tuple[int, Dict[str, str], bytes]] = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, *args):
                pass

            def _serve(self):
                fake._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # ---- test helpers ---------------------------------------------------------------------------

    @staticmethod
    def caller_of(spiffe_id: str) -> Caller:
        parts = spiffe_id[len("spiffe://"):].split("/")
        return Caller(spiffe_id, (parts[0], parts[2], parts[3]), parts[4])

    def seed(self, spiffe_id: str, name: str, value: str, scope: str = "*") -> int:
        """Stores a version directly (as another process of the agent would have)."""
        caller = self.caller_of(spiffe_id)
        with self._lock:
            secret = self.store.setdefault(caller.namespace, {}).setdefault(name, Secret(scope))
            secret.versions.append((value, rfc3339(time.time())))
            return len(secret.versions)

    def secret(self, spiffe_id: str, name: str) -> Optional[Secret]:
        return self.store.get(self.caller_of(spiffe_id).namespace, {}).get(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- HTTP -----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = handler.headers.get("content-length")
        raw = handler.rfile.read(int(length)) if length and length.isdigit() else b""
        content_type = handler.headers.get("content-type")
        record = {
            "method": handler.command,
            "path": handler.path,
            "authorization": handler.headers.get("authorization"),
            "content_type": content_type,
            "hexr_headers": [k.lower() for k in handler.headers.keys() if k.lower().startswith("x-hexr-")],
            "body": raw,
        }
        try:
            record["body"] = json.loads(raw) if raw else None
        except ValueError:
            pass
        if handler.headers.get("transfer-encoding"):
            status, body, extra = 400, {"error": {"type": "BadRequest", "message": "a body needs a content-length"}}, {}
        elif self.next_answer is not None:
            status, headers, data = self.next_answer
            self.next_answer = None
            record["status"] = status
            self.requests.append(record)
            self._write(handler, status, data, headers)
            return
        else:
            extra: Dict[str, str] = {}
            try:
                status, body = self._answer(handler.command, handler.path, handler.headers, raw, content_type)
            except Refusal as refusal:
                status, body, extra = refusal.status, {"error": {"type": refusal.type, "message": refusal.message}}, refusal.headers
        record["status"] = status
        self.requests.append(record)
        data = b"" if status == 204 else json.dumps(body).encode("utf-8")
        self._write(handler, status, data, dict({"content-type": "application/json"}, **extra) if status != 204 else {})

    def _write(self, handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: Dict[str, str]) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("cache-control", "no-store")
        if status != 204:
            handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        if data:
            handler.wfile.write(data)
        handler.wfile.flush()
        if self.drop_connections:
            handler.close_connection = True

    def _caller(self, headers) -> Caller:
        auth = headers.get("authorization") or ""
        if not auth.startswith("Bearer "):
            raise Refusal(401, "AuthenticationError", "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)")
        try:
            payload = auth[7:].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            sub, exp = claims["sub"], claims["exp"]
            parts = sub[len("spiffe://"):].split("/")
            if not sub.startswith("spiffe://") or len(parts) != 5 or parts[1] != "agent" or not all(is_role(p) for p in parts[2:]):
                raise ValueError
        except Exception:
            raise Refusal(401, "AuthenticationError", "the JWT-SVID does not verify") from None
        if exp <= time.time():
            raise Refusal(401, "AuthenticationError", "the JWT-SVID has expired")
        if sub in self.revoked:
            raise Refusal(403, "CredentialError", "the identity is revoked")
        return self.caller_of(sub)

    @staticmethod
    def _query(query: str, allowed: Tuple[str, ...]) -> Dict[str, str]:
        if not query:
            return {}
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise bad("the query is malformed") from None
        out: Dict[str, str] = {}
        for key, value in pairs:
            if key not in allowed or key in out:
                raise bad("unknown or repeated query parameter '%s'" % key)
            out[key] = value
        return out

    @staticmethod
    def _json(raw: bytes, content_type: Optional[str], fields: Tuple[str, ...]) -> dict:
        if (content_type or "").split(";")[0].strip().lower() != "application/json":
            raise bad("the body must be application/json", 415)
        if len(raw) > MAX_BODY_BYTES:
            raise bad("the body is too large", 413)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise bad("the body is not JSON") from None
        if not isinstance(body, dict):
            raise bad("the body is not a JSON object")
        unknown = set(body) - set(fields)
        if unknown:
            raise bad("unknown field '%s'" % sorted(unknown)[0])
        return body

    def _answer(self, method: str, target: str, headers, raw: bytes, content_type: Optional[str]) -> Tuple[int, dict]:
        caller = self._caller(headers)
        path, _, query = target.partition("?")
        if path == SECRETS:
            route = "list"
        elif path.startswith(SECRETS + "/") and "/" not in path[len(SECRETS) + 1:]:
            route = "batch" if path[len(SECRETS) + 1:] == BATCH else "secret"
        else:
            raise bad("no such route", 404)
        methods = {"list": ("GET",), "batch": ("POST",), "secret": ("GET", "PUT", "DELETE")}[route]
        if method not in methods:
            refusal = Refusal(405, "BadRequest", "method not allowed here; use %s" % ", ".join(methods))
            refusal.headers["allow"] = ", ".join(methods)
            raise refusal
        if method in ("GET", "DELETE") and raw:
            raise bad("%s takes no body" % method)
        if self.unavailable:
            raise Refusal(503, "CredentialError", "the vault's storage is unavailable")
        with self._lock:
            secrets = self.store.setdefault(caller.namespace, {})
            if route == "list":
                self._query(query, ())
                return 200, {"secrets": [
                    {"name": n, "scope": s.scope, "version": len(s.versions), "created_at": s.versions[-1][1]}
                    for n, s in sorted(secrets.items()) if caller.may(s)
                ]}
            if route == "batch":
                self._query(query, ())
                names = self._json(raw, content_type, ("names",)).get("names")
                if not isinstance(names, list) or not 1 <= len(names) <= MAX_BATCH_NAMES or not all(is_name(n) for n in names):
                    raise bad("'names' must be 1 to %d secret names" % MAX_BATCH_NAMES)
                if len(set(names)) != len(names):
                    raise bad("'names' names a secret twice")
                out = {}
                for name in names:
                    secret = secrets.get(name)
                    if secret is None:
                        raise bad("no such secret: %s" % name, 404)
                    if not caller.may(secret):
                        raise Refusal(403, "CredentialError", "the secret %s is outside this identity's scope" % name)
                    value, created = secret.versions[-1]
                    out[name] = {"scope": secret.scope, "version": len(secret.versions), "value": value, "created_at": created}
                return 200, {"secrets": out}
            name = path[len(SECRETS) + 1:]
            if not is_name(name):
                raise bad("'name' must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
            secret = secrets.get(name)
            if method == "PUT":
                args = self._query(query, ("scope",))
                if "scope" in args and args["scope"] != "*" and not is_role(args["scope"]):
                    raise bad("'scope' must be a role or '*'")
                scope = args.get("scope", "*")
                body = self._json(raw, content_type, ("value",))
                if "value" not in body:
                    raise bad("'value' is missing")
                value = body["value"]
                if not isinstance(value, str):
                    raise bad("'value' must be a string")
                try:
                    size = len(value.encode("utf-8"))
                except UnicodeEncodeError:
                    size = -1
                if size < 0:
                    raise bad("'value' is not valid Unicode")
                if size > MAX_VALUE_BYTES:
                    raise bad("'value' is over %d bytes" % MAX_VALUE_BYTES, 413)
                if secret is None:
                    if scope != "*" and scope != caller.role:
                        raise Refusal(403, "CredentialError", "the secret %s would be outside this identity's scope" % name)
                    secret = secrets[name] = Secret(scope)
                elif not caller.may(secret):
                    raise Refusal(403, "CredentialError", "the secret %s is outside this identity's scope" % name)
                elif secret.scope != scope:
                    raise bad("the secret %s has another scope" % name, 409)
                created = rfc3339(time.time())
                secret.versions.append((value, created))
                return 201, {"name": name, "scope": secret.scope, "version": len(secret.versions), "created_at": created}
            query_args = self._query(query, ("version",) if method == "GET" else ())
            if "version" in query_args and (not is_version(query_args["version"]) or int(query_args["version"]) > MAX_VERSION):
                raise bad("'version' must be a positive integer")
            if secret is None:
                raise bad("no such secret: %s" % name, 404)
            if not caller.may(secret):
                raise Refusal(403, "CredentialError", "the secret %s is outside this identity's scope" % name)
            if method == "DELETE":
                del secrets[name]
                return 204, {}
            version = int(query_args.get("version") or len(secret.versions))
            if version > len(secret.versions):
                raise bad("no such version of %s" % name, 404)
            value, created = secret.versions[version - 1]
            return 200, {"name": name, "scope": secret.scope, "version": version, "value": value, "created_at": created}


def main() -> None:  # pragma: no cover - a manual run: python tests/fake_vault.py
    vault = FakeVault()
    print(vault.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        vault.close()


if __name__ == "__main__":  # pragma: no cover
    main()
