"""Shared fixtures: OpenTelemetry's in-memory exporter and reader (installed once per session, as
global providers can be set only once), a fake sidecar for the tests that need no stack, unsigned
JWT-SVIDs for them, and the stack's environment for the tests that run against the real one
(e2e/sdk-python.test.ts sets it)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import settings
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hexr
import hexr.clock
import hexr.identity
import hexr.sidecar

# Nothing written into the working tree: no example database, and hypothesis's other caches in a
# temporary directory instead of ./.hypothesis/.
settings.register_profile("hexr", database=None)
settings.load_profile("hexr")
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    import atexit
    import shutil
    import tempfile

    import hypothesis.configuration

    _hypothesis_dir = tempfile.mkdtemp(prefix="hexr-hypothesis-")
    hypothesis.configuration.set_hypothesis_home_dir(_hypothesis_dir)
    atexit.register(shutil.rmtree, _hypothesis_dir, True)

SPAN_EXPORTER = InMemorySpanExporter()
METRIC_READER = InMemoryMetricReader()
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(SPAN_EXPORTER))
trace.set_tracer_provider(_tracer_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[METRIC_READER]))

STACK_VARS = ("HEXR_SIDECAR_URL", "HEXR_TEST_MOTO_URL", "HEXR_TEST_JWT_DIR")


def stack_env() -> Optional[Dict[str, str]]:
    if all(os.environ.get(name) for name in STACK_VARS):
        return dict(os.environ)
    return None


def pytest_collection_modifyitems(config, items):
    if stack_env() is not None:
        return
    marker = pytest.mark.skip(reason="needs the stack (run through e2e/sdk-python.test.ts)")
    required = os.environ.get("HEXR_TEST_REQUIRE_STACK") == "1"
    for item in items:
        if "stack" in item.keywords:
            if required:
                raise pytest.UsageError("HEXR_TEST_REQUIRE_STACK=1 but %s are not all set" % ", ".join(STACK_VARS))
            item.add_marker(marker)


def pytest_configure(config):
    config.addinivalue_line("markers", "stack: runs against the real local stack (sidecar, injector, moto, ...)")


def unsigned_jwt(sub: str, exp: Optional[float] = None, **claims) -> str:
    """A JWT-shaped token for the tests that need no stack (the fake sidecar does not verify)."""
    part = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    body = {"sub": sub, "aud": ["hexr-credential-injector"], "exp": int(exp if exp is not None else time.time() + 3600), "iat": int(time.time())}
    body.update(claims)
    return "%s.%s.%s" % (part({"alg": "none", "typ": "JWT"}), part(body), "c2lnbmF0dXJlLW5vdC1jaGVja2Vk")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test: fresh L1, wall-clock time, no identity from the caller's environment, markers
    in a temporary directory, spans cleared."""
    hexr.clear_cache()
    hexr.clock.reset()
    hexr.identity._sources.clear()
    monkeypatch.setenv("HEXR_CONTEXT_DIR", str(tmp_path / "hexr-context"))
    monkeypatch.delenv("HEXR_JWT_SVID_FILE", raising=False)
    monkeypatch.delenv("SPIFFE_ENDPOINT_SOCKET", raising=False)
    monkeypatch.delenv("HEXR_PROCESS_ROLE", raising=False)
    SPAN_EXPORTER.clear()
    yield
    hexr.clock.reset()
    hexr.clear_cache()


@pytest.fixture
def spans():
    SPAN_EXPORTER.clear()
    return SPAN_EXPORTER


def metric_points(name: str) -> List[Tuple[dict, float]]:
    """(attributes, value) of every point of a metric, cumulative since the session started."""
    data = METRIC_READER.get_metrics_data()
    out = []
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # histogram: how many recorded
                    out.append((dict(point.attributes), value))
    return out


def metric_value(name: str, **attrs) -> float:
    return sum(v for a, v in metric_points(name) if all(a.get(k) == w for k, w in attrs.items()))


# ---- a fake sidecar (tests that need no stack) -----------------------------------------------------


class FakeSidecar:
    """POST /exchange on loopback, answering what `answer` says; records every request (service,
    region, the token's sub) but keeps no token."""

    def __init__(self) -> None:
        self.requests: List[dict] = []
        self.answer: Callable[[dict], Tuple[int, Dict[str, str], bytes]] = self.credential
        self.lifetime = 3600
        self.tier = "L3"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("authorization") or ""
                sub = None
                if auth.startswith("Bearer "):
                    try:
                        payload = auth[7:].split(".")[1]
                        sub = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
                    except Exception:
                        sub = None
                request = {"path": self.path, "service": body.get("service"), "region": body.get("region"), "sub": sub,
                           "content_type": self.headers.get("content-type")}
                fake.requests.append(request)
                status, headers, data = fake.answer(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def credential(self, request: dict) -> Tuple[int, Dict[str, str], bytes]:
        if request["sub"] is None:
            return self.error(401, "AuthenticationError", "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)")
        service = request["service"]
        provider = service.split("_", 1)[0]
        expires_at = int(time.time()) + self.lifetime
        if provider == "aws":
            secret = {"AccessKeyId": "ASIAFAKEFAKEFAKE%04d" % len(self.requests), "SecretAccessKey": "fake-secret-%d" % len(self.requests),
                      "SessionToken": "fake-session-token-%d" % len(self.requests)}
        else:
            secret = {"access_token": "fake-access-token-%d" % len(self.requests), "token_type": "Bearer"}
        body = {"service": service, "provider": provider, "region": request["region"], "spiffe_id": request["sub"],
                "credentials": secret, "expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)), "expires_at": expires_at}
        return 200, {"content-type": "application/json", "x-hexr-cache": self.tier, "x-hexr-expires-at": str(expires_at)}, json.dumps(body).encode()

    @staticmethod
    def error(status: int, type_: str, message: str) -> Tuple[int, Dict[str, str], bytes]:
        return status, {"content-type": "application/json"}, json.dumps({"error": {"type": type_, "message": message}}).encode()

    def calls(self, service: Optional[str] = None) -> int:
        return sum(1 for r in self.requests if service is None or r["service"] == service)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_sidecar(monkeypatch):
    sidecar = FakeSidecar()
    monkeypatch.setenv("HEXR_SIDECAR_URL", sidecar.url)
    yield sidecar
    hexr.sidecar.exchanger().client.close()
    sidecar.close()


@pytest.fixture
def token_file(tmp_path, monkeypatch):
    """Writes an unsigned JWT-SVID for `sub` and points HEXR_JWT_SVID_FILE at it."""

    def write(sub: str, name: str = "svid.jwt", exp: Optional[float] = None, use: bool = True) -> str:
        path = tmp_path / name
        path.write_text(unsigned_jwt(sub, exp))
        if use:
            monkeypatch.setenv("HEXR_JWT_SVID_FILE", str(path))
        return str(path)

    return write
