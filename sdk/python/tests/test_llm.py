"""hexr_llm, the provider clients, usage and cost_tree against tests/fake_llm_sidecar.py (a
loopback stand-in for the sidecar's LLM route and the providers behind it): exactly what each
sends, no key from the agent, a fresh JWT-SVID on every request, the official openai and
anthropic clients streamed and not, error mapping, spans without content, the seeds' cost tree,
and `hexr usage`."""

import asyncio
import json
import os
import pathlib
import sys

import pytest

import hexr.llm
from hexr import (
    AccessDeniedError, AuthenticationError, BadRequestError, BudgetExceededError, CredentialError, HexrError,
    MissingDependencyError, ProviderError, hexr_agent, hexr_llm,
)
from hexr.cli import main as cli_main
from hexr.llm import PLACEHOLDER_KEY, UsageRow, cost_tree

from conftest import unsigned_jwt
from fake_llm_sidecar import REPLY, FakeLlmSidecar

WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"
RESEARCHER = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher"
EDITOR = "spiffe://hexr.local/agent/acme-corp/content-crew/editor"
ADMIN = "spiffe://hexr.local/agent/hexr-system/admin/main"
CLAUDE = "claude-test-model"  # not a real model: the installed anthropic warns about deprecated ones
PROMPT = "Generate a status report on project NIGHTJAR"
CONTRACT = pathlib.Path(__file__).resolve().parents[3] / "contract" / "contract.json"


@pytest.fixture
def llm(monkeypatch):
    fake = FakeLlmSidecar()
    monkeypatch.setenv("HEXR_SIDECAR_URL", fake.url)
    yield fake
    for client in hexr.llm._clients.values():
        client.close()
    hexr.llm._clients.clear()
    fake.close()


@pytest.fixture
def svid(tmp_path, monkeypatch):
    """svid(sub, n=...) (re)writes the process's JWT-SVID file atomically; `n` is a claim that
    tells one token from the next."""
    path = tmp_path / "svid.jwt"
    monkeypatch.setenv("HEXR_JWT_SVID_FILE", str(path))

    def write(sub: str = WRITER, n: int = 1) -> str:
        token = unsigned_jwt(sub, n=n)
        temporary = tmp_path / "svid.jwt.tmp"
        temporary.write_text(token)
        os.replace(temporary, path)
        return token

    return write


# ---- the contract ---------------------------------------------------------------------------------


def test_route_constants_are_the_contracts():
    llm_section = json.loads(CONTRACT.read_text())["llm"]
    assert hexr.llm.LLM_PATH == llm_section["path"]
    assert hexr.llm.USAGE_PATH == llm_section["usage_path"]
    assert set(hexr.llm.PROVIDERS) == set(llm_section["providers"])
    assert "/v1/chat/completions" in llm_section["providers"]["openai"]["endpoints"]
    assert "/v1/messages" in llm_section["providers"]["anthropic"]["endpoints"]
    assert "/openai/deployments/{deployment}/chat/completions" in llm_section["providers"]["azure_openai"]["endpoints"]
    # What the SDK sends as a placeholder travels only in headers the sidecar strips.
    assert {"authorization", "x-api-key", "api-key"} == set(llm_section["agent_key_headers"])


# ---- hexr_llm -------------------------------------------------------------------------------------


def test_the_seeds_sample_as_written(llm, svid):
    svid(WRITER)

    @hexr_agent(name="smart-agent", tenant="acme-corp")
    def main():
        return hexr_llm(provider="openai", model="gpt-4o", prompt="Generate a status report")

    response = main()
    assert response["choices"][0]["message"]["content"] == REPLY
    (request,) = llm.llm_requests()
    assert (request["method"], request["path"]) == ("POST", "/v1/llm/openai/v1/chat/completions")
    assert request["body"] == {"model": "gpt-4o", "messages": [{"role": "user", "content": "Generate a status report"}]}
    assert request["claims"]["sub"] == WRITER
    assert request["key_headers"] == {}  # the JWT-SVID only: no provider key from the agent
    assert request["content_type"] == "application/json"


def test_openai_answer_is_returned_unchanged(llm, svid):
    svid()
    answer = hexr_llm("openai", "gpt-4o", messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": PROMPT}],
                      temperature=0.2, max_tokens=50)
    assert answer == {
        "id": "chatcmpl-fake1", "object": "chat.completion", "created": answer["created"], "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY, "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 0}},
    }
    body = llm.llm_requests()[0]["body"]
    assert body == {"model": "gpt-4o", "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": PROMPT}],
                    "temperature": 0.2, "max_tokens": 50}


def test_anthropic_request(llm, svid):
    svid()
    answer = hexr_llm("anthropic", CLAUDE, prompt=PROMPT, system="You are terse.")
    assert answer["content"][0]["text"] == REPLY and answer["stop_reason"] == "end_turn"
    hexr_llm("anthropic", CLAUDE, prompt=PROMPT, max_tokens=64)
    first, second = llm.llm_requests()
    assert first["path"] == "/v1/llm/anthropic/v1/messages"
    assert first["anthropic_version"] == "2023-06-01"
    assert first["body"] == {"model": CLAUDE, "messages": [{"role": "user", "content": PROMPT}],
                             "system": "You are terse.", "max_tokens": 1024}
    assert second["body"]["max_tokens"] == 64
    assert first["key_headers"] == second["key_headers"] == {}


def test_azure_openai_request(llm, svid):
    svid()
    answer = hexr_llm("azure_openai", "gpt4o-prod", prompt=PROMPT)
    assert answer["choices"][0]["message"]["content"] == REPLY
    hexr_llm("azure_openai", "gpt4o-prod", prompt=PROMPT, api_version="2025-01-01-preview", temperature=0)
    first, second = llm.llm_requests()
    assert first["path"] == "/v1/llm/azure_openai/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert first["body"] == {"messages": [{"role": "user", "content": PROMPT}]}  # the deployment names the model
    assert second["path"].endswith("?api-version=2025-01-01-preview")
    assert second["body"] == {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
    assert first["key_headers"] == {}


@pytest.mark.parametrize("call, fragment", [
    (lambda: hexr_llm("openai", "gpt-4o"), "exactly one of prompt and messages"),
    (lambda: hexr_llm("openai", "gpt-4o", prompt="a", messages=[]), "exactly one of prompt and messages"),
    (lambda: hexr_llm("openai", "gpt-4o", messages="hello"), "messages must be a list"),
    (lambda: hexr_llm("openai", "gpt-4o", prompt=PROMPT, stream=True), "does not stream"),
    (lambda: hexr_llm("mistral", "large", prompt=PROMPT), "provider must be one of openai, anthropic, azure_openai"),
    (lambda: hexr_llm("openai", "", prompt=PROMPT), "model must be"),
    (lambda: hexr_llm("azure_openai", "../admin", prompt=PROMPT), "deployment"),
    (lambda: hexr_llm("openai", "gpt-4o", prompt=PROMPT, response_format=object()), "not JSON-serialisable"),
])
def test_bad_calls_are_refused_before_any_request(llm, svid, call, fragment):
    svid()
    with pytest.raises(BadRequestError) as caught:
        call()
    assert fragment in caught.value.message
    assert PROMPT not in str(caught.value)
    assert llm.requests == []


def test_no_identity_is_refused_before_any_request(llm):
    with pytest.raises(AuthenticationError):
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    with pytest.raises(AuthenticationError):
        hexr.llm.openai_client()
    assert llm.requests == []


def test_every_call_presents_the_current_svid(llm, svid):
    svid(WRITER, n=1)
    client = hexr.llm.openai_client()
    hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    svid(WRITER, n=2)  # rotated, as the keeper or spiffe-helper rotates it
    hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    assert [r["claims"]["n"] for r in llm.llm_requests()] == [1, 1, 2, 2]


def test_each_agent_calls_with_its_own_identity(llm, svid, tmp_path):
    svid(WRITER)
    researcher_file = tmp_path / "researcher.jwt"
    researcher_file.write_text(unsigned_jwt(RESEARCHER))

    @hexr_agent(name="content-crew", tenant="acme-corp", role="researcher", identity=str(researcher_file))
    def research():
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
        return hexr.llm.openai_client()

    client = research()
    hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    assert [r["claims"]["sub"] for r in llm.llm_requests()] == [RESEARCHER, WRITER]
    explicit = hexr.llm.anthropic_client(identity=str(researcher_file))
    explicit.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
    assert llm.llm_requests()[-1]["claims"]["sub"] == RESEARCHER
    client.close()


# ---- the official clients -------------------------------------------------------------------------


def test_openai_client(llm, svid):
    svid()
    client = hexr.llm.openai_client(max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    assert completion.choices[0].message.content == REPLY and completion.usage.prompt_tokens == 12
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5  # the sidecar asked for usage
    plain, streamed = llm.llm_requests()
    assert plain["path"] == streamed["path"] == "/v1/llm/openai/v1/chat/completions"
    assert plain["key_headers"] == {}  # its placeholder Authorization was replaced by the JWT-SVID
    assert plain["claims"]["sub"] == WRITER
    assert streamed["body"]["stream"] is True
    client.close()


def test_async_openai_client(llm, svid):
    svid()

    async def run():
        client = hexr.llm.async_openai_client(max_retries=0)
        completion = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
        text = ""
        async for chunk in await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True):
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
        await client.close()
        return completion.choices[0].message.content, text

    assert asyncio.run(run()) == (REPLY, REPLY)
    assert [r["claims"]["sub"] for r in llm.llm_requests()] == [WRITER, WRITER]


def test_anthropic_client(llm, svid):
    svid()
    client = hexr.llm.anthropic_client(max_retries=0)
    message = client.messages.create(model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": PROMPT}])
    assert message.content[0].text == REPLY and message.usage.output_tokens == 6
    with client.messages.stream(model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": PROMPT}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY and final.usage.output_tokens == 6
    plain, streamed = llm.llm_requests()
    assert plain["path"] == streamed["path"] == "/v1/llm/anthropic/v1/messages"
    assert plain["anthropic_version"]  # the client sends its own version
    # anthropic insists on a key: nothing but the placeholder (x-api-key in most releases; this
    # one puts it in Authorization, which the SVID replaces), and the sidecar strips it.
    assert set(plain["key_headers"].values()) <= {PLACEHOLDER_KEY}
    assert plain["claims"]["sub"] == WRITER and streamed["body"]["stream"] is True
    client.close()


def test_azure_openai_client(llm, svid):
    svid()
    client = hexr.llm.azure_openai_client(max_retries=0)
    completion = client.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": PROMPT}])
    assert completion.choices[0].message.content == REPLY
    (request,) = llm.llm_requests()
    assert request["path"] == "/v1/llm/azure_openai/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert request["key_headers"] == {"api-key": PLACEHOLDER_KEY}
    client.close()


@pytest.mark.parametrize("factory, option", [
    (hexr.llm.openai_client, "api_key"), (hexr.llm.openai_client, "base_url"),
    (hexr.llm.anthropic_client, "auth_token"), (hexr.llm.azure_openai_client, "azure_endpoint"),
])
def test_clients_refuse_a_key_or_another_endpoint(llm, svid, factory, option):
    svid()
    with pytest.raises(BadRequestError, match="sidecar"):
        factory(**{option: "sk-real-key-do-not-send"})


def test_a_missing_provider_package_names_the_extra(llm, svid, monkeypatch):
    svid()
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hexr\[openai\]'"):
        hexr.llm.openai_client()
    with pytest.raises(MissingDependencyError, match=r"pip install 'hexr\[anthropic\]'"):
        hexr.llm.anthropic_client()
    assert hexr_llm("openai", "gpt-4o", prompt=PROMPT)["choices"]  # hexr_llm needs neither


# ---- errors ---------------------------------------------------------------------------------------


def test_sidecar_refusals_map_to_the_sdks_errors(llm, svid):
    svid()
    llm.denied_models = {"gpt-4o"}
    with pytest.raises(AccessDeniedError) as denied:
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    assert (denied.value.status, denied.value.message) == (403, "the model is not granted to this identity")
    assert isinstance(denied.value, CredentialError)

    llm.denied_models = set()
    llm.budget_exhausted = True
    with pytest.raises(BudgetExceededError) as budget:
        hexr_llm("anthropic", CLAUDE, prompt=PROMPT)
    assert isinstance(budget.value, CredentialError) and budget.value.status == 429 and budget.value.retry_after == 30.0
    assert str(budget.value) == "429 CredentialError: the LLM budget of this identity is exhausted"

    llm.budget_exhausted = False
    llm.revoked = {WRITER}
    with pytest.raises(AccessDeniedError, match="revoked"):
        hexr_llm("azure_openai", "gpt4o-prod", prompt=PROMPT)


def test_the_sidecars_401_is_an_authentication_error(llm, svid, monkeypatch):
    svid()
    forged = hexr.identity.JwtSvid("not-a-jwt", WRITER, 9e9)
    monkeypatch.setattr(hexr.identity.FileJwtSource, "fetch", lambda self: forged)
    with pytest.raises(AuthenticationError) as caught:
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    assert caught.value.status == 401 and "not-a-jwt" not in repr(caught.value)


@pytest.mark.parametrize("provider, model, status, body, error_type, message", [
    ("openai", "gpt-4o", 429, {"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
     "requests", "Rate limit reached for gpt-4o"),
    ("openai", "gpt-4o", 400, {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": None}},
     "invalid_request_error", "Invalid value for 'temperature'"),
    ("anthropic", CLAUDE, 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     "overloaded_error", "Overloaded"),
    ("azure_openai", "gpt4o-prod", 400, {"error": {"code": "content_filter", "message": "The response was filtered"}},
     "content_filter", "The response was filtered"),
    # The contract's types, but not exactly its shape: still the provider's.
    ("openai", "gpt-4o", 403, {"error": {"type": "CredentialError", "message": "x", "code": "y"}}, "CredentialError", "x"),
])
def test_provider_errors_are_provider_errors(llm, svid, provider, model, status, body, error_type, message):
    svid()
    llm.provider_error = (status, body)
    with pytest.raises(ProviderError) as caught:
        hexr_llm(provider, model, prompt=PROMPT)
    error = caught.value
    assert not isinstance(error, CredentialError) and isinstance(error, HexrError)
    assert (error.provider, error.status, error.error_type, error.message, error.retry_after) == (provider, status, error_type, message, 7.0)
    assert PROMPT not in str(error) and PROMPT not in repr(error)


def test_a_provider_message_is_scrubbed_of_keys(llm, svid):
    svid()
    key = "sk-proj-" + "A" * 48
    llm.provider_error = (401, {"error": {"message": "Incorrect API key provided: %s" % key, "type": "invalid_request_error",
                                          "param": None, "code": "invalid_api_key"}})
    with pytest.raises(ProviderError) as caught:
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    assert key not in str(caught.value) and "[redacted]" in caught.value.message


def test_errors_survive_pickling(llm, svid):
    import pickle

    budget = pickle.loads(pickle.dumps(BudgetExceededError("spent", retry_after=12.0)))
    assert budget.retry_after == 12.0 and budget.status == 429
    provider = pickle.loads(pickle.dumps(ProviderError("Overloaded", provider="anthropic", status=529, error_type="overloaded_error")))
    assert (provider.provider, provider.error_type, provider.status) == ("anthropic", "overloaded_error", 529)


# ---- spans ----------------------------------------------------------------------------------------


def _no_content(span, *secrets):
    texts = [span.name] + ["%s=%s" % item for item in span.attributes.items()]
    texts += [event.name + str(dict(event.attributes or {})) for event in span.events]
    texts.append(str(span.status.description))
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)


def test_span_follows_the_genai_conventions_without_content(llm, svid, spans):
    token = svid(WRITER)

    @hexr_agent(name="content-crew", tenant="acme-corp", role="writer")
    def write():
        return hexr_llm("openai", "gpt-4o", prompt=PROMPT, temperature=0.3, max_tokens=100)

    write()
    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat gpt-4o"]
    assert span.kind.name == "CLIENT"
    attributes = dict(span.attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "hexr.llm.provider": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 100,
        "hexr.agent": "content-crew",
        "hexr.tenant": "acme-corp",
        "hexr.process_role": "writer",
        "hexr.spiffe_id": WRITER,
        "http.response.status_code": 200,
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "chatcmpl-fake1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.output_tokens": 5,
    }
    _no_content(span, PROMPT, "NIGHTJAR", REPLY, "nominal", token, PLACEHOLDER_KEY)


def test_anthropic_span_counts_every_input_token(llm, svid, spans):
    svid()
    hexr_llm("anthropic", CLAUDE, prompt=PROMPT)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat claude-test-model"]
    assert span.attributes["gen_ai.system"] == "anthropic" and span.attributes["gen_ai.request.max_tokens"] == 1024
    assert span.attributes["gen_ai.usage.input_tokens"] == 10 + 4 + 2  # uncached + cache reads + cache writes
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 2
    assert span.attributes["gen_ai.usage.output_tokens"] == 6
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    _no_content(span, PROMPT, REPLY)


def test_error_spans(llm, svid, spans):
    svid()
    llm.budget_exhausted = True
    with pytest.raises(BudgetExceededError):
        hexr_llm("azure_openai", "gpt4o-prod", prompt=PROMPT)
    llm.budget_exhausted = False
    llm.provider_error = (400, {"error": {"message": "bad request about %s" % PROMPT, "type": "invalid_request_error", "param": None, "code": None}})
    with pytest.raises(ProviderError):
        hexr_llm("openai", "gpt-4o", prompt=PROMPT)
    budget, provider = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert budget.attributes["gen_ai.provider.name"] == "azure.ai.openai" and budget.attributes["gen_ai.system"] == "az.ai.openai"
    assert budget.status.status_code.name == "ERROR"
    assert (budget.attributes["error.type"], budget.attributes["hexr.error.status"]) == ("CredentialError", 429)
    assert (provider.attributes["error.type"], provider.attributes["hexr.error.status"]) == ("ProviderError", 400)
    for span in (budget, provider):
        assert span.events == ()  # no exception event: the provider's message may quote the request
        _no_content(span, PROMPT)


# ---- usage and the cost tree ----------------------------------------------------------------------

SEEDS_ROWS = [
    {"spiffe_id": RESEARCHER, "provider": "openai", "model": "gpt-4o", "requests": 1, "input_tokens": 1200,
     "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 800, "cost_nanousd": 28_000_000},
    {"spiffe_id": WRITER, "provider": "openai", "model": "gpt-4o", "requests": 2, "input_tokens": 3400,
     "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 2100, "cost_nanousd": 89_000_000},
    {"spiffe_id": EDITOR, "provider": "openai", "model": "gpt-4o", "requests": 1, "input_tokens": 800,
     "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 400, "cost_nanousd": 19_000_000},
]

SEEDS_TREE = """\
Trace: content-crew
├── spiffe://…/content-crew/researcher
│   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
├── spiffe://…/content-crew/writer
│   └── gpt-4o: 3,400 input + 2,100 output tokens ($0.089)
└── spiffe://…/content-crew/editor
    └── gpt-4o: 800 input + 400 output tokens ($0.019)

Total: $0.136
"""


def test_cost_tree_of_the_seeds():
    assert cost_tree([UsageRow.from_json(row) for row in SEEDS_ROWS]) == SEEDS_TREE


def test_cost_tree_several_models_and_agents():
    rows = [UsageRow.from_json(row) for row in SEEDS_ROWS[:2]] + [
        UsageRow(WRITER, "anthropic", "claude-sonnet-4-5", 1, 5000, 4000, 0, 300, 7_500_000),
        UsageRow("spiffe://hexr.local/agent/acme-corp/data-pipeline/main", "openai", "gpt-4o-mini", 3, 900, 0, 0, 90, 189_000),
    ]
    assert cost_tree(rows) == """\
Trace: content-crew
├── spiffe://…/content-crew/researcher
│   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
└── spiffe://…/content-crew/writer
    ├── gpt-4o: 3,400 input + 2,100 output tokens ($0.089)
    └── claude-sonnet-4-5: 5,000 input (4,000 cached) + 300 output tokens ($0.008)

Total: $0.125

Trace: data-pipeline
└── spiffe://…/data-pipeline/main
    └── gpt-4o-mini: 900 input + 90 output tokens ($0.000189)

Total: $0.000189
"""


def test_usage_admin_sees_every_row_others_their_own(llm, svid):
    llm.usage_rows = SEEDS_ROWS
    llm.admins = {ADMIN}
    svid(ADMIN)
    assert [row.spiffe_id for row in hexr.llm.usage()] == [RESEARCHER, WRITER, EDITOR]
    svid(WRITER, n=2)
    (own,) = hexr.llm.usage()
    assert own == UsageRow(WRITER, "openai", "gpt-4o", 2, 3400, 0, 0, 2100, 89_000_000)
    assert own.cost_usd == pytest.approx(0.089)
    assert [(r["method"], r["path"]) for r in llm.requests] == [("GET", "/v1/llm/usage")] * 2


def test_usage_errors(llm, svid):
    svid()
    llm.revoked = {WRITER}
    with pytest.raises(AccessDeniedError):
        hexr.llm.usage()


def test_cli_usage_json(llm, svid, capsys):
    llm.usage_rows = SEEDS_ROWS + [dict(SEEDS_ROWS[0], spiffe_id="spiffe://hexr.local/agent/acme-corp/data-pipeline/main")]
    llm.admins = {ADMIN}
    svid(ADMIN)
    assert cli_main(["usage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"rows": llm.usage_rows}
    assert cli_main(["usage", "--agent", "content-crew", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"rows": SEEDS_ROWS}


def test_cli_usage_tree(llm, svid, capsys):
    llm.usage_rows = SEEDS_ROWS
    llm.admins = {ADMIN}
    svid(ADMIN)
    assert cli_main(["usage", "--agent", "content-crew"]) == 0
    assert capsys.readouterr().out == SEEDS_TREE
    assert cli_main(["usage", "--agent", "nobody"]) == 0
    assert capsys.readouterr().out == "No LLM usage for nobody.\n"
    llm.revoked = {ADMIN}
    assert cli_main(["usage"]) == 1
    assert capsys.readouterr().err == "hexr usage: 403 CredentialError: the identity is revoked\n"
