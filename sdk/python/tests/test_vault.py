"""hexr.vault against a loopback stand-in for the sidecar and the vault (tests/fake_vault.py, strict
to docs/vault-api.md): every operation and its exact request, scopes and namespaces, batches all
or nothing, every error mapping, client-side validation with no request sent, @secrets_batch
(sync, async, explicit arguments, failures), and no value in any repr, error, log line or span."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import pickle
import time
import urllib.parse
from typing import List

import pytest

import hexr
from hexr import (
    AccessDeniedError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    HexrError,
    SecretNotFoundError,
    hexr_agent,
)
from hexr import vault as vault_module
from hexr.vault import VaultClient, secrets_batch

from conftest import SPAN_EXPORTER, unsigned_jwt
from fake_vault import MAX_BODY_BYTES, FakeVault

RESEARCHER = "spiffe://hexr.local/agent/acme-corp/my-agent/researcher"
WRITER = "spiffe://hexr.local/agent/acme-corp/my-agent/writer"
MAIN = "spiffe://hexr.local/agent/acme-corp/my-agent/main"
OTHER_AGENT = "spiffe://hexr.local/agent/acme-corp/other-agent/researcher"
OTHER_TENANT = "spiffe://hexr.local/agent/globex/my-agent/researcher"

# A value that must never be seen anywhere but in what get() returns.
VALUE = "sk-proj-Zq8vX3-never-log-me-7Hk2"


@pytest.fixture
def fake(monkeypatch):
    vault = FakeVault()
    monkeypatch.setenv("HEXR_SIDECAR_URL", vault.url)
    yield vault
    vault.close()


@pytest.fixture
def identity(tmp_path, monkeypatch):
    """identity(spiffe_id): writes its JWT-SVID, points HEXR_JWT_SVID_FILE at it, returns the token."""

    def use(spiffe_id: str, exp=None) -> str:
        token = unsigned_jwt(spiffe_id, exp)
        path = tmp_path / ("%s.jwt" % spiffe_id[len("spiffe://"):].replace("/", "_"))
        path.write_text(token)
        monkeypatch.setenv("HEXR_JWT_SVID_FILE", str(path))
        return token

    return use


@pytest.fixture
def client(fake):
    vault = VaultClient()
    yield vault
    vault.close()


def paths(fake: FakeVault) -> List[str]:
    return ["%s %s" % (r["method"], r["path"]) for r in fake.requests]


# ---- every operation, and exactly what it sends ---------------------------------------------------


def test_put_get_list_delete_round_trip_and_the_exact_requests(fake, client, identity):
    token = identity(RESEARCHER)
    assert client.put("OPENAI_API_KEY", "sk-one") == 1
    assert client.put("OPENAI_API_KEY", "sk-two") == 2
    assert client.put("SLACK_WEBHOOK", "https://hooks.slack.com/x") == 1
    assert client.get("OPENAI_API_KEY") == "sk-two"
    assert client.get("OPENAI_API_KEY", version=1) == "sk-one"
    assert client.get("OPENAI_API_KEY", 2) == "sk-two"
    assert client.list() == ["OPENAI_API_KEY", "SLACK_WEBHOOK"]
    assert client.delete("OPENAI_API_KEY") is None
    assert client.list() == ["SLACK_WEBHOOK"]
    with pytest.raises(SecretNotFoundError):
        client.get("OPENAI_API_KEY")

    assert paths(fake) == [
        "PUT /v1/secrets/OPENAI_API_KEY",
        "PUT /v1/secrets/OPENAI_API_KEY",
        "PUT /v1/secrets/SLACK_WEBHOOK",
        "GET /v1/secrets/OPENAI_API_KEY",
        "GET /v1/secrets/OPENAI_API_KEY?version=1",
        "GET /v1/secrets/OPENAI_API_KEY?version=2",
        "GET /v1/secrets",
        "DELETE /v1/secrets/OPENAI_API_KEY",
        "GET /v1/secrets",
        "GET /v1/secrets/OPENAI_API_KEY",
    ]
    for request in fake.requests:
        assert request["authorization"] == "Bearer " + token
        assert request["hexr_headers"] == []  # identity is the sidecar's to assert, never the client's
        if request["method"] == "PUT":
            assert request["content_type"] == "application/json"
        else:
            assert request["content_type"] is None and request["body"] is None
    assert [r["body"] for r in fake.requests[:3]] == [{"value": "sk-one"}, {"value": "sk-two"}, {"value": "https://hooks.slack.com/x"}]
    assert [r["status"] for r in fake.requests] == [201, 201, 201, 200, 200, 200, 200, 204, 200, 404]


def test_values_round_trip_exactly_up_to_the_limit(fake, client, identity):
    identity(MAIN)
    cases = {
        "EMPTY": "",
        "UNICODE": "clé-秘密-🔑 \"quoted\" \\ back\nslash\t\x00\x7f",
        "MAX_ASCII": "a" * 65536,
        "MAX_MULTIBYTE": "€" * (65536 // 3) + "a",  # 65,535 + 1 bytes of UTF-8
        "MAX_CONTROL": "\x01" * 65536,  # the longest JSON body: \u0001 for every byte
        "N" * 128: "longest name",
    }
    for name, value in cases.items():
        assert client.put(name, value) == 1
    assert client.get_many(list(cases)) == cases
    for name, value in cases.items():
        assert client.get(name) == value


def test_scope_role_level_secrets_are_the_roles_own(fake, identity):
    with VaultClient() as researcher_vault:
        identity(RESEARCHER)
        assert researcher_vault.put("SHARED_KEY", "shared") == 1
        assert researcher_vault.put("RESEARCH_DB_KEY", "db", scope="researcher") == 1
        assert fake.requests[-1]["path"] == "/v1/secrets/RESEARCH_DB_KEY?scope=researcher"
        assert fake.secret(RESEARCHER, "RESEARCH_DB_KEY").scope == "researcher"
        assert fake.secret(RESEARCHER, "SHARED_KEY").scope == "*"
        assert researcher_vault.get("RESEARCH_DB_KEY") == "db"
        assert researcher_vault.put("RESEARCH_DB_KEY", "db2", scope="researcher") == 2
        assert researcher_vault.list() == ["RESEARCH_DB_KEY", "SHARED_KEY"]

        # The seeds: a writer trying to read RESEARCH_DB_KEY receives an access denied error.
        identity(WRITER)
        with pytest.raises(AccessDeniedError) as denied:
            researcher_vault.get("RESEARCH_DB_KEY")
        assert isinstance(denied.value, CredentialError) and denied.value.status == 403
        with pytest.raises(AccessDeniedError):
            researcher_vault.put("RESEARCH_DB_KEY", "overwrite", scope="researcher")
        with pytest.raises(AccessDeniedError):
            researcher_vault.delete("RESEARCH_DB_KEY")
        with pytest.raises(AccessDeniedError):
            researcher_vault.put("WRITER_MADE", "x", scope="researcher")  # creating outside its own scope
        assert researcher_vault.get("SHARED_KEY") == "shared"  # agent-level: every role
        assert researcher_vault.list() == ["SHARED_KEY"]  # never a name it may not read
        assert researcher_vault.put("SHARED_KEY", "shared2") == 2

        # A put naming another scope than the secret's: 409, a BadRequestError.
        with pytest.raises(BadRequestError) as conflict:
            researcher_vault.put("SHARED_KEY", "x", scope="writer")
        assert conflict.value.status == 409 and not isinstance(conflict.value, SecretNotFoundError)
        identity(RESEARCHER)
        with pytest.raises(BadRequestError) as conflict:
            researcher_vault.put("RESEARCH_DB_KEY", "x")  # scope left out: agent-level
        assert conflict.value.status == 409
        assert conflict.value.message == "the secret RESEARCH_DB_KEY has another scope"  # a 1-character value is no reason to drop it
        assert researcher_vault.get("RESEARCH_DB_KEY") == "db2"


def test_namespaces_other_agents_and_tenants_see_nothing(fake, client, identity):
    identity(RESEARCHER)
    client.put("OPENAI_API_KEY", "mine")
    for other in (OTHER_AGENT, OTHER_TENANT):
        identity(other)
        with pytest.raises(SecretNotFoundError):
            client.get("OPENAI_API_KEY")
        assert client.list() == []
        assert client.put("OPENAI_API_KEY", "theirs") == 1  # a different secret of the same name
        assert client.get("OPENAI_API_KEY") == "theirs"
    identity(RESEARCHER)
    assert client.get("OPENAI_API_KEY") == "mine"


# ---- batches --------------------------------------------------------------------------------------


def test_get_many_is_one_round_trip_in_the_order_given(fake, client, identity):
    token = identity(RESEARCHER)
    fake.seed(RESEARCHER, "B_KEY", "b")
    fake.seed(RESEARCHER, "A_KEY", "a1")
    fake.seed(RESEARCHER, "A_KEY", "a2")
    fake.seed(RESEARCHER, "OWN", "own", scope="researcher")
    fake.requests.clear()
    got = client.get_many(["OWN", "B_KEY", "A_KEY", "B_KEY"])
    assert got == {"OWN": "own", "B_KEY": "b", "A_KEY": "a2"} and list(got) == ["OWN", "B_KEY", "A_KEY"]
    assert client.get_many(("A_KEY",)) == {"A_KEY": "a2"}
    assert client.get_many(n for n in ["B_KEY"]) == {"B_KEY": "b"}
    assert paths(fake) == ["POST /v1/secrets/_batch"] * 3
    first = fake.requests[0]
    assert first["body"] == {"names": ["OWN", "B_KEY", "A_KEY"]}  # duplicates dropped
    assert first["content_type"] == "application/json" and first["authorization"] == "Bearer " + token


def test_get_many_is_all_or_nothing(fake, client, identity):
    identity(RESEARCHER)
    fake.seed(RESEARCHER, "SHARED", "s")
    fake.seed(RESEARCHER, "WRITER_ONLY", "w", scope="writer")
    with pytest.raises(SecretNotFoundError) as missing:
        client.get_many(["SHARED", "NOPE"])
    assert "NOPE" in missing.value.message and missing.value.status == 404
    with pytest.raises(AccessDeniedError) as denied:
        client.get_many(["SHARED", "WRITER_ONLY"])
    assert "WRITER_ONLY" in denied.value.message and denied.value.status == 403
    assert [r["status"] for r in fake.requests] == [404, 403]


def test_get_many_checks_the_answer_names_exactly_the_batch(fake, client, identity):
    identity(RESEARCHER)
    for body in ({"secrets": {"A": {"value": "a"}}}, {"secrets": {"A": {"value": "a"}, "B": {"value": "b"}, "C": {"value": "c"}}},
                 {"secrets": {"A": {"value": "a"}, "B": {"value": 1}}}, {"secrets": []}, []):
        fake.next_answer = (200, {"content-type": "application/json"}, json.dumps(body).encode())
        with pytest.raises(CredentialError) as error:
            client.get_many(["A", "B"])
        assert error.value.status == 502


# ---- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,type_,cls",
    [
        (400, "BadRequest", BadRequestError),
        (401, "AuthenticationError", AuthenticationError),
        (403, "CredentialError", AccessDeniedError),
        (404, "BadRequest", SecretNotFoundError),
        (405, "BadRequest", BadRequestError),
        (409, "BadRequest", BadRequestError),
        (413, "BadRequest", BadRequestError),
        (415, "BadRequest", BadRequestError),
        (429, "CredentialError", CredentialError),
        (502, "CredentialError", CredentialError),
        (503, "CredentialError", CredentialError),
        (504, "CredentialError", CredentialError),
    ],
)
@pytest.mark.parametrize("contract_body", [True, False], ids=["contract-body", "other-body"])
def test_every_status_maps_to_its_error(fake, client, identity, status, type_, cls, contract_body):
    identity(RESEARCHER)
    body = json.dumps({"error": {"type": type_, "message": "the vault's message"}}).encode() if contract_body else b"<html>oops</html>"
    for operation in (lambda: client.get("A"), lambda: client.put("A", "value-1"), lambda: client.delete("A"),
                      lambda: client.list(), lambda: client.get_many(["A"])):
        fake.next_answer = (status, {"content-type": "application/json" if contract_body else "text/html"}, body)
        with pytest.raises(HexrError) as error:
            operation()
        assert type(error.value) is cls
        assert (error.value.status, error.value.type) == (status, type_)
        assert isinstance(error.value, CredentialError) == (status in (403, 429, 502, 503, 504))
        if contract_body:
            assert error.value.message == "the vault's message"
        else:
            assert "html" not in str(error.value) and error.value.message


def test_errors_from_the_fake_itself(fake, client, identity):
    identity(RESEARCHER)
    fake.unavailable = True
    with pytest.raises(CredentialError) as unavailable:
        client.list()
    assert unavailable.value.status == 503 and not isinstance(unavailable.value, AccessDeniedError)
    fake.unavailable = False

    fake.revoked.add(RESEARCHER)
    with pytest.raises(AccessDeniedError):
        client.get("ANY")
    fake.revoked.clear()

    # A JWT-SVID the vault does not accept (its signature, or another identity than the sidecar's): 401.
    fake.next_answer = (401, {}, json.dumps({"error": {"type": "AuthenticationError", "message": "the JWT-SVID does not verify"}}).encode())
    with pytest.raises(AuthenticationError) as unauthenticated:
        client.get("ANY")
    assert unauthenticated.value.status == 401


def test_no_identity_or_an_expired_one_fails_before_any_request(fake, client, identity, monkeypatch):
    with pytest.raises(AuthenticationError):
        client.get("ANY")
    identity(RESEARCHER, exp=time.time() - 10)
    with pytest.raises(AuthenticationError):
        client.put("ANY", VALUE)
    assert fake.requests == []


def test_an_unreachable_sidecar_is_a_credential_error(identity):
    identity(RESEARCHER)
    with VaultClient(sidecar_url="http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(CredentialError) as error:
            client.get_many(["A"])
    assert error.value.status == 503


def test_malformed_answers_are_502s(fake, client, identity):
    identity(RESEARCHER)
    cases = [
        (lambda: client.put("A", "v"), 200, {"name": "A", "scope": "*", "version": 1}),  # not 201
        (lambda: client.put("A", "v"), 201, {"name": "B", "scope": "*", "version": 1}),
        (lambda: client.put("A", "v"), 201, {"name": "A", "scope": "*", "version": 0}),
        (lambda: client.get("A"), 200, {"name": "B", "value": "v", "version": 1}),
        (lambda: client.get("A"), 200, {"name": "A", "value": 5, "version": 1}),
        (lambda: client.get("A", version=2), 200, {"name": "A", "value": "v", "version": 3}),
        (lambda: client.list(), 200, {"secrets": [{"name": "../x"}]}),
        (lambda: client.list(), 200, {"names": []}),
        (lambda: client.delete("A"), 200, {}),
    ]
    for operation, status, body in cases:
        fake.next_answer = (status, {"content-type": "application/json"}, json.dumps(body).encode())
        with pytest.raises(CredentialError) as error:
            operation()
        assert error.value.status == 502
    fake.next_answer = (200, {"content-type": "application/json"}, b"{not json " + VALUE.encode())
    with pytest.raises(CredentialError) as error:
        client.get("A")
    assert VALUE not in repr(error.value) and error.value.__context__ is None


def test_a_put_that_meets_a_closed_kept_alive_connection_is_sent_once_on_a_fresh_one(fake, client, identity):
    identity(RESEARCHER)
    fake.drop_connections = True  # every answer closes its connection without saying so
    for version in (1, 2, 3):
        assert client.put("ROTATED", "v%d" % version) == version
        time.sleep(0.05)  # the FIN arrives while the connection sits idle
    client.delete("ROTATED")
    time.sleep(0.05)
    assert client.list() == []
    assert [r["status"] for r in fake.requests] == [201, 201, 201, 204, 200]


# ---- client-side validation: ValueError, nothing sent ---------------------------------------------

BAD_NAMES = ["", "_batch", "-x", ".env", "a/b", "a b", "x" * 129, "é", "a%2Fb", "a?b", 5, None, b"NAME"]
BAD_SCOPES = ["*", "", ".", "..", "a/b", "re searcher", "x" * 129, "é", 3]
BAD_VERSIONS = [0, -1, True, "1", 1.0]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_before_any_request(fake, client, identity, name):
    identity(RESEARCHER)
    for operation in (lambda: client.get(name), lambda: client.put(name, VALUE), lambda: client.delete(name),
                      lambda: client.get_many([name]), lambda: client.get_many(["OK", name])):
        with pytest.raises(ValueError) as error:
            operation()
        assert isinstance(error.value, BadRequestError) and error.value.status == 400
        assert "secret name" in str(error.value)
    assert fake.requests == []


def test_a_value_passed_as_a_name_is_not_echoed(fake, client, identity):
    identity(RESEARCHER)
    with pytest.raises(ValueError) as error:
        client.get("sk-proj abc/def" + VALUE)
    assert VALUE not in str(error.value) and VALUE not in repr(error.value)


@pytest.mark.parametrize("scope", BAD_SCOPES, ids=repr)
def test_bad_scopes_are_refused_before_any_request(fake, client, identity, scope):
    identity(RESEARCHER)
    with pytest.raises(ValueError, match="scope must be a role name"):
        client.put("NAME", VALUE, scope=scope)
    assert fake.requests == []


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_bad_versions_are_refused_before_any_request(fake, client, identity, version):
    identity(RESEARCHER)
    with pytest.raises(ValueError, match="version must be a positive int"):
        client.get("NAME", version=version)
    assert fake.requests == []


def test_bad_values_and_batches_are_refused_before_any_request(fake, client, identity):
    identity(RESEARCHER)
    with pytest.raises(ValueError, match="at most 65536 bytes") as too_big:
        client.put("NAME", "€" * 21846)  # 65,538 bytes
    assert too_big.value.status == 413
    with pytest.raises(ValueError, match="at most 65536 bytes"):
        client.put("NAME", "a" * 65537)
    with pytest.raises(ValueError, match="lone surrogate") as surrogate:
        client.put("NAME", VALUE + "\ud800")
    assert surrogate.value.__context__ is None  # the UnicodeEncodeError held the value
    for value in (None, 5, b"bytes", ["x"]):
        with pytest.raises(ValueError, match="must be a str"):
            client.put("NAME", value)
    for names in ("OPENAI_API_KEY", b"X", None, 5, [], ["N%d" % i for i in range(65)]):
        with pytest.raises(ValueError):
            client.get_many(names)
    assert fake.requests == []


def test_sixty_four_names_is_one_batch(fake, client, identity):
    identity(RESEARCHER)
    for i in range(64):
        fake.seed(RESEARCHER, "N%d" % i, "v%d" % i)
    assert client.get_many(["N%d" % (i % 64) for i in range(200)]) == {"N%d" % i: "v%d" % i for i in range(64)}
    assert len(fake.requests) == 1 and len(fake.requests[0]["body"]["names"]) == 64


# ---- identity: the agent's, the process's, or the client's own -----------------------------------


def test_the_agent_contexts_identity_wins_over_the_process(fake, identity, tmp_path):
    process_token = identity(MAIN)
    agent_path = tmp_path / "agent.jwt"
    agent_token = unsigned_jwt(RESEARCHER)
    agent_path.write_text(agent_token)

    @hexr_agent(name="my-agent", tenant="acme-corp", role="researcher", identity=str(agent_path))
    def run():
        return VaultClient().put("K", "v", scope="researcher")

    assert run() == 1
    VaultClient().list()
    explicit = tmp_path / "explicit.jwt"
    explicit_token = unsigned_jwt(WRITER)
    explicit.write_text(explicit_token)
    VaultClient(identity=str(explicit)).list()
    assert [r["authorization"] for r in fake.requests] == ["Bearer " + t for t in (agent_token, process_token, explicit_token)]


def test_sidecar_url_with_a_trailing_slash(fake, identity):
    identity(RESEARCHER)
    with VaultClient(sidecar_url=fake.url + "/") as client:
        client.list()
    assert paths(fake) == ["GET /v1/secrets"]


# ---- @secrets_batch --------------------------------------------------------------------------------


def test_secrets_batch_injects_in_one_round_trip_inside_the_agent(fake, identity, tmp_path):
    identity(MAIN)
    fake.seed(MAIN, "OPENAI_API_KEY", "sk-openai-123456")
    fake.seed(MAIN, "ANTHROPIC_API_KEY", "sk-ant-654321")
    seen = {}

    @hexr_agent(name="my-agent", tenant="acme-corp")
    @secrets_batch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
    def main(OPENAI_API_KEY: str, ANTHROPIC_API_KEY: str):
        seen.update(openai=OPENAI_API_KEY, anthropic=ANTHROPIC_API_KEY, agent=hexr.current_agent().agent_name)
        return "done"

    assert main() == "done"
    assert seen == {"openai": "sk-openai-123456", "anthropic": "sk-ant-654321", "agent": "my-agent"}
    assert paths(fake) == ["POST /v1/secrets/_batch"]
    assert fake.requests[0]["body"] == {"names": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]}
    assert main.__name__ == "main" and main.__wrapped__.hexr_secrets == ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    assert (tmp_path / "hexr-context" / "my-agent-main.json").exists()


def test_secrets_batch_explicit_arguments_win_and_are_not_fetched(fake, identity):
    identity(MAIN)
    fake.seed(MAIN, "A", "vault-a")
    fake.seed(MAIN, "B", "vault-b")

    @secrets_batch(["A", "B"])
    def use(A, B, other=None):
        return (A, B, other)

    assert use(B="mine-b") == ("vault-a", "mine-b", None)
    assert fake.requests[-1]["body"] == {"names": ["A"]}
    assert use("mine-a", other=1) == ("mine-a", "vault-b", 1)
    assert fake.requests[-1]["body"] == {"names": ["B"]}
    fake.requests.clear()
    assert use("mine-a", "mine-b") == ("mine-a", "mine-b", None)
    assert use(A="x", B="y") == ("x", "y", None)
    assert fake.requests == []  # everything given: no request at all


def test_secrets_batch_async(fake, identity):
    identity(MAIN)
    fake.seed(MAIN, "OPENAI_API_KEY", "sk-async")
    fake.seed(MAIN, "ANTHROPIC_API_KEY", "sk-ant-async")

    @hexr_agent(name="my-agent", tenant="acme-corp")
    @secrets_batch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
    async def main(OPENAI_API_KEY: str, ANTHROPIC_API_KEY: str, *, suffix: str = ""):
        await asyncio.sleep(0)
        return OPENAI_API_KEY + ANTHROPIC_API_KEY + suffix

    assert asyncio.iscoroutinefunction(main)
    assert asyncio.run(main(suffix="!")) == "sk-asyncsk-ant-async!"
    assert asyncio.run(main(ANTHROPIC_API_KEY="given")) == "sk-asyncgiven"
    assert [r["body"] for r in fake.requests] == [{"names": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]}, {"names": ["OPENAI_API_KEY"]}]


def test_secrets_batch_async_uses_the_agents_identity_in_its_worker_thread(fake, identity, tmp_path):
    identity(MAIN)
    agent_path = tmp_path / "researcher.jwt"
    agent_token = unsigned_jwt(RESEARCHER)
    agent_path.write_text(agent_token)
    fake.seed(RESEARCHER, "OWN", "own", scope="researcher")

    @hexr_agent(name="my-agent", tenant="acme-corp", role="researcher", identity=str(agent_path))
    @secrets_batch(["OWN"])
    async def main(OWN):
        return OWN

    assert asyncio.run(main()) == "own"
    assert fake.requests[0]["authorization"] == "Bearer " + agent_token


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_secrets_batch_missing_or_denied_raises_and_the_function_is_not_called(fake, identity, is_async):
    identity(WRITER)
    fake.seed(WRITER, "PRESENT", "p")
    fake.seed(WRITER, "RESEARCH_DB_KEY", "r", scope="researcher")
    calls = []

    def body(**kwargs):
        calls.append(kwargs)

    if is_async:
        async def fn(PRESENT=None, ABSENT=None, RESEARCH_DB_KEY=None):
            body(PRESENT=PRESENT)
    else:
        def fn(PRESENT=None, ABSENT=None, RESEARCH_DB_KEY=None):
            body(PRESENT=PRESENT)

    run = lambda f: asyncio.run(f()) if is_async else f()
    with pytest.raises(SecretNotFoundError):
        run(secrets_batch(["PRESENT", "ABSENT"])(fn))
    with pytest.raises(AccessDeniedError):
        run(secrets_batch(["PRESENT", "RESEARCH_DB_KEY"])(fn))
    assert calls == []
    run(secrets_batch(["PRESENT"])(fn))
    assert calls == [{"PRESENT": "p"}]


def test_secrets_batch_checks_names_and_parameters_when_decorating(fake):
    with pytest.raises(ValueError, match="secret name"):
        secrets_batch(["bad/name"])
    with pytest.raises(ValueError):
        secrets_batch("OPENAI_API_KEY")  # a str, not a list of names
    with pytest.raises(ValueError):
        secrets_batch([])
    with pytest.raises(TypeError, match="no parameter 'B'"):
        secrets_batch(["A", "B"])(lambda A: A)

    def positional_only(A, /):
        return A

    with pytest.raises(TypeError, match="by keyword"):
        secrets_batch(["A"])(positional_only)
    with pytest.raises(TypeError, match="no parameter"):
        secrets_batch(["db.password"])(lambda password: password)
    assert fake.requests == []


def test_secrets_batch_with_kwargs_for_names_that_are_not_identifiers(fake, identity):
    identity(MAIN)
    fake.seed(MAIN, "db.password", "pw")
    fake.seed(MAIN, "api-key", "k")

    @secrets_batch(["db.password", "api-key"])
    def connect(**secrets):
        return secrets

    assert connect() == {"db.password": "pw", "api-key": "k"}
    assert connect(**{"api-key": "given"}) == {"db.password": "pw", "api-key": "given"}


def test_secrets_batch_with_a_given_client(fake, identity, tmp_path):
    path = tmp_path / "w.jwt"
    path.write_text(unsigned_jwt(WRITER))
    fake.seed(WRITER, "W", "w")
    client = VaultClient(identity=str(path))

    @secrets_batch(["W"], client=client)
    def use(W):
        return W

    assert use() == "w"


# ---- never a value in a repr, an error, a log line or a span --------------------------------------


def _everything_about(error: BaseException) -> str:
    parts = [str(error), repr(error), str(error.args), repr(pickle.loads(pickle.dumps(error)))]
    seen = error
    while seen is not None:  # the whole chain an uncaught exception would print
        parts.append(repr(seen))
        parts.append(repr(getattr(seen, "__dict__", {})))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_no_value_in_reprs_errors_logs_or_spans(fake, identity, caplog, tmp_path):
    identity(RESEARCHER)
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's included
    SPAN_EXPORTER.clear()
    errors: List[BaseException] = []
    client = VaultClient()

    def expect_error(operation):
        try:
            operation()
        except HexrError as error:
            errors.append(error)
        else:  # pragma: no cover
            raise AssertionError("no error")

    assert client.put("OPENAI_API_KEY", VALUE) == 1
    assert client.put("RESEARCH_ONLY", VALUE, scope="researcher") == 1
    assert client.get("OPENAI_API_KEY") == VALUE
    assert client.get("OPENAI_API_KEY", version=1) == VALUE
    many = client.get_many(["OPENAI_API_KEY", "RESEARCH_ONLY"])
    assert many == {"OPENAI_API_KEY": VALUE, "RESEARCH_ONLY": VALUE} and many["OPENAI_API_KEY"] == VALUE
    logging.getLogger("careless.app").info("secrets: %s %r", many, many)  # what a careless log line shows
    assert repr(many) == str(many) == "Secrets(['OPENAI_API_KEY', 'RESEARCH_ONLY'], values hidden)"
    assert client.list() == ["OPENAI_API_KEY", "RESEARCH_ONLY"]

    @secrets_batch(["OPENAI_API_KEY"])
    def uses(OPENAI_API_KEY):
        return len(OPENAI_API_KEY)

    assert uses() == len(VALUE)
    expect_error(lambda: client.put("OPENAI_API_KEY", VALUE, scope="researcher"))  # 409
    expect_error(lambda: client.put("NAME", VALUE + "x" * 65536))  # too big, local
    expect_error(lambda: client.put("sk/" + VALUE, VALUE))  # a value where the name goes, local
    expect_error(lambda: client.put("NAME", VALUE + "\udc00"))  # not Unicode, local
    # A vault that (wrongly) echoes the value put: the SDK does not pass it on.
    fake.next_answer = (400, {}, json.dumps({"error": {"type": "BadRequest", "message": "bad value %s" % VALUE}}).encode())
    expect_error(lambda: client.put("NAME", VALUE))
    fake.next_answer = (200, {}, b"{oops " + VALUE.encode())
    expect_error(lambda: client.get("OPENAI_API_KEY"))
    identity(WRITER)
    expect_error(lambda: client.get("RESEARCH_ONLY"))
    expect_error(lambda: client.get_many(["OPENAI_API_KEY", "RESEARCH_ONLY"]))
    expect_error(lambda: secrets_batch(["RESEARCH_ONLY"])(lambda RESEARCH_ONLY: None)())
    fake.unavailable = True
    expect_error(lambda: client.get("OPENAI_API_KEY"))

    assert len(errors) == 10
    for error in errors:
        assert VALUE not in _everything_about(error), repr(error)
    for text in (repr(client), str(client)):
        assert VALUE not in text and "VaultClient(sidecar_url=" in text

    records = caplog.records
    assert any(r.name == "hexr.vault" for r in records)  # the SDK does log each operation
    assert any(r.name == "careless.app" and "values hidden" in r.getMessage() for r in records)
    for record in records:
        assert VALUE not in record.getMessage() and VALUE not in repr(record.args) and VALUE not in repr(record.__dict__)
    assert VALUE not in caplog.text

    spans = [s for s in SPAN_EXPORTER.get_finished_spans() if s.name.startswith("hexr.vault.")]
    assert len(spans) >= 17
    allowed = {"hexr.vault.operation", "hexr.vault.name", "hexr.vault.names", "hexr.vault.scope", "hexr.vault.version",
               "hexr.vault.outcome", "hexr.vault.status", "error.type", "hexr.error.status"}
    for span in spans:
        dumped = span.to_json()
        assert VALUE not in dumped, span.name
        assert set(span.attributes) <= allowed, set(span.attributes) - allowed
        assert not span.events


def test_spans_record_operation_name_scope_version_and_outcome(fake, identity):
    identity(RESEARCHER)
    client = VaultClient()
    SPAN_EXPORTER.clear()
    client.put("K", "v", scope="researcher")
    client.get("K")
    client.get("K", version=1)
    client.list()
    client.get_many(["K"])
    client.delete("K")
    for operation in (lambda: client.get("K"), lambda: client.get("bad/name")):
        with pytest.raises(HexrError):
            operation()
    spans = [(s.name, dict(s.attributes)) for s in SPAN_EXPORTER.get_finished_spans()]
    assert spans == [
        ("hexr.vault.put", {"hexr.vault.operation": "put", "hexr.vault.name": "K", "hexr.vault.scope": "researcher",
                            "hexr.vault.status": 201, "hexr.vault.version": 1, "hexr.vault.outcome": "ok"}),
        ("hexr.vault.get", {"hexr.vault.operation": "get", "hexr.vault.name": "K", "hexr.vault.status": 200,
                            "hexr.vault.version": 1, "hexr.vault.scope": "researcher", "hexr.vault.outcome": "ok"}),
        ("hexr.vault.get", {"hexr.vault.operation": "get", "hexr.vault.name": "K", "hexr.vault.version": 1,
                            "hexr.vault.status": 200, "hexr.vault.scope": "researcher", "hexr.vault.outcome": "ok"}),
        ("hexr.vault.list", {"hexr.vault.operation": "list", "hexr.vault.status": 200, "hexr.vault.outcome": "ok"}),
        ("hexr.vault.get_many", {"hexr.vault.operation": "get_many", "hexr.vault.names": ("K",), "hexr.vault.status": 200,
                                 "hexr.vault.outcome": "ok"}),
        ("hexr.vault.delete", {"hexr.vault.operation": "delete", "hexr.vault.name": "K", "hexr.vault.status": 204,
                               "hexr.vault.outcome": "ok"}),
        ("hexr.vault.get", {"hexr.vault.operation": "get", "hexr.vault.name": "K", "hexr.vault.status": 404,
                            "hexr.vault.outcome": "not_found", "error.type": "BadRequest", "hexr.error.status": 404}),
        ("hexr.vault.get", {"hexr.vault.operation": "get", "hexr.vault.outcome": "invalid", "error.type": "BadRequest",
                            "hexr.error.status": 400}),
    ]
    errors = [s for s in SPAN_EXPORTER.get_finished_spans() if s.attributes.get("error.type")]
    assert all(s.status.description == "BadRequest" for s in errors)


def test_exports():
    assert hexr.VaultClient is VaultClient and hexr.secrets_batch is secrets_batch
    assert vault_module.AccessDeniedError is hexr.AccessDeniedError is AccessDeniedError
    assert vault_module.SecretNotFoundError is hexr.SecretNotFoundError is SecretNotFoundError
    assert issubclass(AccessDeniedError, CredentialError)
    assert issubclass(SecretNotFoundError, BadRequestError) and issubclass(SecretNotFoundError, LookupError)
    assert issubclass(SecretNotFoundError, HexrError)
    for name in ("VaultClient", "secrets_batch", "AccessDeniedError", "SecretNotFoundError"):
        assert name in hexr.__all__ and name in vault_module.__all__


# ---- the fake is as strict as the document: what a client could get wrong ----------------------------


def _raw(fake, method, target, headers=None, body=None):
    parsed = urllib.parse.urlsplit(fake.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_fake_refuses_what_the_document_refuses(fake):
    auth = {"Authorization": "Bearer " + unsigned_jwt(RESEARCHER)}
    json_auth = dict(auth, **{"Content-Type": "application/json"})
    cases = [
        ("GET", "/v1/secrets", {}, None, 401),
        ("GET", "/v1/secrets", {"Authorization": "Bearer garbage"}, None, 401),
        ("PATCH", "/v1/secrets/A", auth, None, 405),
        ("POST", "/v1/secrets", json_auth, b"{}", 405),
        ("GET", "/v1/secrets/_batch", auth, None, 405),
        ("GET", "/v1/secrets/a/b", auth, None, 404),
        ("GET", "/v1/secretsX", auth, None, 404),
        ("GET", "/v1/secrets/_hidden", auth, None, 400),
        ("PUT", "/v1/secrets/A", dict(auth, **{"Content-Type": "text/plain"}), b'{"value":"v"}', 415),
        ("PUT", "/v1/secrets/A", json_auth, b'{"value":"v","extra":1}', 400),
        ("PUT", "/v1/secrets/A", json_auth, b'{}', 400),
        ("PUT", "/v1/secrets/A", json_auth, b'{"value":1}', 400),
        ("PUT", "/v1/secrets/A", json_auth, b'{"value":"\\ud800"}', 400),
        ("PUT", "/v1/secrets/A", json_auth, b'not json', 400),
        ("PUT", "/v1/secrets/A?scope=..", json_auth, b'{"value":"v"}', 400),
        ("PUT", "/v1/secrets/A?scope=a%2Fb", json_auth, b'{"value":"v"}', 400),
        ("PUT", "/v1/secrets/A?scope=researcher&scope=researcher", json_auth, b'{"value":"v"}', 400),
        ("PUT", "/v1/secrets/A?role=researcher", json_auth, b'{"value":"v"}', 400),
        ("PUT", "/v1/secrets/A", json_auth, json.dumps({"value": "a" * 65537}).encode(), 413),
        ("PUT", "/v1/secrets/A", json_auth, b" " * (MAX_BODY_BYTES + 1), 413),
        ("GET", "/v1/secrets/A?version=0", auth, None, 400),
        ("GET", "/v1/secrets/A?version=01", auth, None, 400),
        ("GET", "/v1/secrets/A?version=2147483648", auth, None, 400),
        ("GET", "/v1/secrets/A?v=1", auth, None, 400),
        ("GET", "/v1/secrets?x=1", auth, None, 400),
        ("DELETE", "/v1/secrets/A?version=1", auth, None, 400),
        ("GET", "/v1/secrets/A", json_auth, b"{}", 400),
        ("POST", "/v1/secrets/_batch", json_auth, b'{"names":[]}', 400),
        ("POST", "/v1/secrets/_batch", json_auth, json.dumps({"names": ["N%d" % i for i in range(65)]}).encode(), 400),
        ("POST", "/v1/secrets/_batch", json_auth, b'{"names":["A","A"]}', 400),
        ("POST", "/v1/secrets/_batch", json_auth, b'{"names":["A"],"x":1}', 400),
        ("POST", "/v1/secrets/_batch", json_auth, b'{"names":["A"]}', 404),
    ]
    for method, target, headers, body, status in cases:
        got, answer_headers, data = _raw(fake, method, target, headers, body)
        assert got == status, (method, target, body and body[:60], data)
        assert answer_headers["cache-control"] == "no-store"
        error = json.loads(data)["error"]
        assert error["type"] in ("BadRequest", "AuthenticationError", "CredentialError")
    assert _raw(fake, "PATCH", "/v1/secrets/A", auth)[1]["allow"] == "GET, PUT, DELETE"
    got, answer_headers, data = _raw(fake, "PUT", "/v1/secrets/A?scope=*", json_auth, b'{"value":"v"}')  # "*" is agent-level
    assert got == 201 and answer_headers["content-type"] == "application/json" and json.loads(data)["scope"] == "*"
    assert set(json.loads(data)) == {"name", "scope", "version", "created_at"}
    assert json.loads(data)["created_at"].endswith("Z")
    got, answer_headers, data = _raw(fake, "DELETE", "/v1/secrets/A", auth)
    assert (got, data, "content-length" in answer_headers) == (204, b"", False)
