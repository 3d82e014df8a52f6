"""Identity sources: the JWT-SVID file (re-read on change, never past exp) and the SPIFFE Workload
API (a loopback gRPC server on a Unix socket implementing FetchJWTSVID with py-spiffe's own
generated stubs; real SPIRE comes with another issue)."""

import os
import time
from concurrent import futures

import pytest

import hexr.clock
from hexr import AuthenticationError, FileJwtSource, WorkloadApiJwtSource
from hexr.identity import default_source

from conftest import unsigned_jwt

WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"
EDITOR = "spiffe://hexr.local/agent/acme-corp/content-crew/editor"


def test_no_source_configured():
    with pytest.raises(AuthenticationError) as none:
        default_source()
    assert "SPIFFE_ENDPOINT_SOCKET" in none.value.message and "HEXR_JWT_SVID_FILE" in none.value.message


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(AuthenticationError):
        FileJwtSource(str(tmp_path / "absent.jwt")).fetch()
    garbage = tmp_path / "garbage.jwt"
    garbage.write_text("not a token")
    with pytest.raises(AuthenticationError):
        FileJwtSource(str(garbage)).fetch()
    workload = tmp_path / "workload.jwt"
    workload.write_text(unsigned_jwt("spiffe://hexr.local/workload/t/a/r"))
    with pytest.raises(AuthenticationError):
        FileJwtSource(str(workload)).fetch()


def test_file_is_re_read_when_it_changes(tmp_path):
    path = tmp_path / "svid.jwt"
    path.write_text(unsigned_jwt(WRITER))
    source = FileJwtSource(str(path))
    first = source.fetch()
    assert source.fetch() is first  # unchanged file: not parsed again
    path.write_text(unsigned_jwt(EDITOR) + "\n")  # a helper rotated it (another size)
    assert source.fetch().spiffe_id == EDITOR
    token = unsigned_jwt(WRITER, exp=time.time() + 7200)
    tmp = tmp_path / "svid.tmp"
    tmp.write_text(token)
    os.replace(tmp, path)  # atomic rotation: a new inode
    assert source.fetch().token == token


def test_expired_token_is_never_used(tmp_path):
    path = tmp_path / "svid.jwt"
    path.write_text(unsigned_jwt(WRITER, exp=time.time() + 100))
    source = FileJwtSource(str(path))
    assert source.fetch().spiffe_id == WRITER
    hexr.clock.advance(101)
    with pytest.raises(AuthenticationError) as expired:
        source.fetch()
    assert "expired" in expired.value.message
    path.write_text(unsigned_jwt(WRITER, exp=time.time() + 3600) + " ")  # the helper catches up
    assert source.fetch().expires_at > hexr.clock.now()


def test_token_in_no_repr(tmp_path):
    path = tmp_path / "svid.jwt"
    token = unsigned_jwt(WRITER)
    path.write_text(token)
    svid = FileJwtSource(str(path)).fetch()
    assert token not in repr(svid) and token.split(".")[2] not in repr(svid)


# ---- the Workload API ------------------------------------------------------------------------------

grpc = pytest.importorskip("grpc")
workload_pb2 = pytest.importorskip("spiffe._proto.workload_pb2")
workload_pb2_grpc = pytest.importorskip("spiffe._proto.workload_pb2_grpc")


class FakeWorkloadApi(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """FetchJWTSVID as SPIRE's agent serves it: requires the workload.spiffe.io header."""

    def __init__(self, spiffe_id, lifetime=300):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())  # SPIRE signs JWT-SVIDs with ES256 (or RS256, PS256)
        self.spiffe_id = spiffe_id
        self.lifetime = lifetime
        self.requests = []

    def FetchJWTSVID(self, request, context):
        metadata = dict(context.invocation_metadata())
        if metadata.get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        self.requests.append(list(request.audience))
        import jwt

        now = int(time.time())
        claims = {"sub": self.spiffe_id, "aud": list(request.audience), "iat": now, "exp": now + self.lifetime}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "test", "typ": "JWT"})
        return workload_pb2.JWTSVIDResponse(svids=[workload_pb2.JWTSVID(spiffe_id=self.spiffe_id, svid=token)])


@pytest.fixture
def workload_api(tmp_path):
    socket = tmp_path / "agent.sock"
    servicer = FakeWorkloadApi(WRITER)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(servicer, server)
    server.add_insecure_port("unix://%s" % socket)
    server.start()
    yield "unix://%s" % socket, servicer
    server.stop(0)


def test_workload_api_source(workload_api, monkeypatch):
    address, servicer = workload_api
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", address)
    monkeypatch.setenv("HEXR_JWT_SVID_FILE", "/nonexistent")  # the Workload API wins
    source = default_source()
    assert isinstance(source, WorkloadApiJwtSource)
    svid = source.fetch()
    assert svid.spiffe_id == WRITER
    assert servicer.requests == [["hexr-credential-injector"]]
    assert source.fetch() is svid  # kept until 30 s before exp
    hexr.clock.advance(servicer.lifetime - 29)
    assert source.fetch() is not svid
    assert len(servicer.requests) == 2
    source.close()


def test_workload_api_audience_from_env(workload_api, monkeypatch):
    address, servicer = workload_api
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", address)
    monkeypatch.setenv("HEXR_JWT_AUDIENCE", "other-audience")
    default_source().fetch()
    assert servicer.requests == [["other-audience"]]


def test_workload_api_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", "unix://%s" % (tmp_path / "no.sock"))
    with pytest.raises(AuthenticationError):
        default_source().fetch()
