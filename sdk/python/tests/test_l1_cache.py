"""The in-process L1 against a fake sidecar: hits within expires_at - 600 s, per identity, bounded,
thread-safe with one exchange per key, and the exchange itself (request shape, errors)."""

import threading

import pytest

import hexr
import hexr.clock
from hexr import AuthenticationError, BadRequestError, CredentialError, get_credentials, hexr_tool
from hexr.sidecar import Credential, L1Cache

RESEARCHER = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher"
WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"


def test_second_call_is_an_in_process_hit(fake_sidecar, token_file):
    token_file(WRITER)
    first = get_credentials("aws_s3")
    second = get_credentials("aws_s3")
    assert fake_sidecar.calls() == 1
    assert second is first
    assert fake_sidecar.requests[0] == {"path": "/exchange", "service": "aws_s3", "region": "us-east-1", "sub": WRITER, "content_type": "application/json"}


def test_region_is_part_of_the_key_and_is_sent(fake_sidecar, token_file):
    token_file(WRITER)
    get_credentials("aws_s3")
    eu = get_credentials("aws_s3", region="eu-west-1")
    get_credentials("aws_s3", region="eu-west-1")
    assert eu.region == "eu-west-1"
    assert [r["region"] for r in fake_sidecar.requests] == ["us-east-1", "eu-west-1"]


def test_entry_is_served_until_ten_minutes_before_expiry(fake_sidecar, token_file):
    token_file(WRITER)
    fake_sidecar.lifetime = 3600
    get_credentials("aws_s3")
    hexr.clock.advance(3600 - 600 - 5)  # 605 s left: still served
    get_credentials("aws_s3")
    assert fake_sidecar.calls() == 1
    hexr.clock.advance(10)  # 595 s left: inside the buffer
    get_credentials("aws_s3")
    assert fake_sidecar.calls() == 2


def test_two_identities_in_one_process_never_share_an_entry(fake_sidecar, token_file):
    researcher = token_file(RESEARCHER, "researcher.jwt", use=False)
    writer = token_file(WRITER, "writer.jwt", use=False)
    results = {}

    @hexr.hexr_agent(name="content-crew", tenant="acme-corp", role="researcher", identity=researcher)
    def as_researcher():
        return get_credentials("aws_s3")

    @hexr.hexr_agent(name="content-crew", tenant="acme-corp", role="writer", identity=writer)
    def as_writer():
        return get_credentials("aws_s3")

    threads = [threading.Thread(target=lambda n=n, f=f: results.__setitem__(n, f())) for n, f in (("r", as_researcher), ("w", as_writer))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["r"].spiffe_id == RESEARCHER and results["w"].spiffe_id == WRITER
    assert results["r"].secret != results["w"].secret
    assert sorted(r["sub"] for r in fake_sidecar.requests) == [RESEARCHER, WRITER]
    # and each is a hit for its own identity afterwards
    assert as_researcher() is results["r"] and as_writer() is results["w"]
    assert fake_sidecar.calls() == 2


def test_concurrent_misses_for_one_key_make_one_exchange(fake_sidecar, token_file):
    token_file(WRITER)
    barrier = threading.Barrier(32)
    got = []

    def worker():
        barrier.wait()
        got.append(get_credentials("aws_s3"))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 32 and len({id(c) for c in got}) == 1
    assert fake_sidecar.calls() == 1


def test_cache_is_bounded_least_recently_used_out_first():
    cache = L1Cache(max_entries=3, buffer_seconds=600)
    now = hexr.clock.now()
    make = lambda i: Credential("aws_s3", "aws", "r%d" % i, WRITER, now + 3600, None, "L3", {"k": "v"})
    for i in range(3):
        cache.put((WRITER, "aws_s3", "r%d" % i), make(i))
    assert cache.get((WRITER, "aws_s3", "r0")) is not None  # r0 now most recent
    cache.put((WRITER, "aws_s3", "r3"), make(3))
    assert len(cache) == 3
    assert cache.get((WRITER, "aws_s3", "r1")) is None
    assert {k[2] for k in cache.keys()} == {"r0", "r2", "r3"}


def test_min_ttl_and_entries_never_servable_are_not_stored():
    cache = L1Cache(max_entries=8, buffer_seconds=600)
    now = hexr.clock.now()
    key = (WRITER, "aws_s3", "us-east-1")
    cache.put(key, Credential("aws_s3", "aws", "us-east-1", WRITER, now + 1000, None, "L1", {}))
    assert cache.get(key) is not None
    assert cache.get(key, min_ttl=960) is not None
    assert cache.get(key, min_ttl=1000) is None
    cache.put(key, Credential("aws_s3", "aws", "us-east-1", WRITER, now + 500, None, "L1", {}))  # inside the buffer: not stored
    assert cache.get(key).expires_at == now + 1000


def test_sidecar_errors_become_the_sdk_errors(fake_sidecar, token_file):
    token_file(WRITER)
    fake_sidecar.answer = lambda r: fake_sidecar.error(403, "CredentialError", "the credential exchange was denied by policy")
    with pytest.raises(CredentialError) as denied:
        get_credentials("aws_ec2")
    assert (denied.value.status, denied.value.type) == (403, "CredentialError")
    fake_sidecar.answer = lambda r: fake_sidecar.error(401, "AuthenticationError", "the credential injector did not accept the identity")
    with pytest.raises(AuthenticationError):
        get_credentials("aws_ec2")
    for status in (429, 502, 503, 504):
        fake_sidecar.answer = lambda r, s=status: fake_sidecar.error(s, "CredentialError", "x")
        with pytest.raises(CredentialError) as failed:
            get_credentials("aws_ec2")
        assert failed.value.status == status
    assert len(hexr.sidecar.l1_cache()) == 0  # no error is cached


def test_transport_failure_is_a_credential_error(monkeypatch, token_file):
    token_file(WRITER)
    monkeypatch.setenv("HEXR_SIDECAR_URL", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(CredentialError) as failed:
        get_credentials("aws_s3")
    assert failed.value.status == 503 and failed.value.type == "CredentialError"


def test_answer_for_another_identity_is_refused(fake_sidecar, token_file):
    token_file(WRITER)
    inner = fake_sidecar.credential

    def lying(request):
        status, headers, body = inner(dict(request, sub=RESEARCHER))
        return status, headers, body

    fake_sidecar.answer = lying
    with pytest.raises(CredentialError) as refused:
        get_credentials("aws_s3")
    assert refused.value.status == 502


def test_bad_service_and_region_fail_before_any_network_call(fake_sidecar, token_file):
    token_file(WRITER)
    for service in ("s3", "aws_S3", "oracle_db", "aws_s3:read", ""):
        with pytest.raises(BadRequestError):
            hexr_tool(service)
    with pytest.raises(BadRequestError):
        hexr_tool("aws_s3", region="US-EAST-1")
    with pytest.raises(BadRequestError):
        hexr_tool("gcp_unknown_thing")  # no client for it
    assert fake_sidecar.calls() == 0


def test_no_identity_is_an_authentication_error(fake_sidecar):
    with pytest.raises(AuthenticationError) as none:
        hexr_tool("aws_s3")
    assert none.value.status == 401
    assert fake_sidecar.calls() == 0
