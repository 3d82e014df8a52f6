"""The contract: the generated module is current, and the shared vectors (contract/vectors.json)
give the same answers here as in the filter, the injector and the bridge."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from hexr import _contract as C
from hexr import contract
from hexr.providers import AWS_CLIENTS, describe

ROOT = Path(__file__).resolve().parents[3]
CONTRACT_JSON = ROOT / "contract" / "contract.json"
VECTORS_JSON = ROOT / "contract" / "vectors.json"
GENERATOR = Path(__file__).resolve().parents[1] / "scripts" / "generate_contract.py"

needs_repo = pytest.mark.skipif(not CONTRACT_JSON.exists(), reason="contract/ is not beside this package")


def _vectors():
    return json.loads(VECTORS_JSON.read_text(encoding="utf-8"))


@needs_repo
def test_generated_module_matches_contract_json():
    spec = importlib.util.spec_from_file_location("generate_contract", GENERATOR)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected = generator.render(json.loads(CONTRACT_JSON.read_text(encoding="utf-8")))
    current = (Path(contract.__file__).parent / "_contract.py").read_text(encoding="utf-8")
    assert current == expected, "src/hexr/_contract.py is stale: run python sdk/python/scripts/generate_contract.py"


@needs_repo
def test_generated_module_carries_every_catalog_service_and_region():
    raw = json.loads(CONTRACT_JSON.read_text(encoding="utf-8"))
    assert list(C.CATALOG) == raw["catalog"]
    assert {p: list(v) for p, v in C.REGIONS.items()} == {p: v for p, v in raw["regions"].items() if not p.startswith("$")}
    assert C.DEFAULT_REGIONS == raw["default_regions"]


@needs_repo
@pytest.mark.parametrize("case", _vectors()["services"] if VECTORS_JSON.exists() else [], ids=lambda c: repr(c["value"]))
def test_service_vectors(case):
    assert contract.is_service(case["value"]) is case["valid"], case.get("why")


@needs_repo
@pytest.mark.parametrize("case", _vectors()["regions"] if VECTORS_JSON.exists() else [], ids=lambda c: repr(c["value"]))
def test_region_vectors(case):
    assert contract.is_region(case["value"]) is case["valid"], case.get("why")


@needs_repo
@pytest.mark.parametrize("case", _vectors()["spiffe_ids"] if VECTORS_JSON.exists() else [], ids=lambda c: repr(c["value"])[:60])
def test_spiffe_id_vectors(case):
    assert contract.is_agent_spiffe_id(case["value"]) is case["valid"], case.get("why")


@needs_repo
def test_key_vectors():
    vectors = _vectors()
    for case in vectors["keys"]:
        key = contract.credential_key(case["spiffe_id"], case["service"], case["region"])
        assert key == case["key"]
        assert contract.lock_key(key) == case["lock"]
        assert contract.is_credential_key(key)
        assert len(key.encode()) <= C.KEY_MAX_BYTES
    for key in vectors["invalid_keys"]:
        assert not contract.is_credential_key(key), key


def test_hexr_tool_table_covers_the_catalog_exactly_as_the_seeds_say():
    # llm_* services are no client of hexr_tool: the sidecar's LLM route puts their API key on
    # the agent's requests itself (contract.json "llm"), so the SDK never holds one.
    assert {s: describe(s) for s in C.CATALOG if s.startswith("llm_")} == {"llm_openai": None, "llm_anthropic": None}
    assert {s: describe(s) for s in C.CATALOG if not s.startswith("llm_")} == {
        "aws_s3": "boto3.client('s3')",
        "aws_ec2": "boto3.client('ec2')",
        "aws_dynamodb": "boto3.resource('dynamodb')",
        "aws_sqs": "boto3.client('sqs')",
        "aws_lambda": "boto3.client('lambda')",
        "aws_bedrock": "boto3.client('bedrock-runtime')",
        "gcp_bigquery": "google.cloud.bigquery.Client",
        "gcp_storage": "google.cloud.storage.Client",
        "gcp_vertexai": "google.genai.Client(vertexai=True)",
        "gcp_pubsub": "google.cloud.pubsub_v1.PublisherClient",
        "azure_storage": "azure.storage.blob.BlobServiceClient",
        "azure_cosmosdb": "azure.cosmos.CosmosClient",
        "azure_openai": "openai.AzureOpenAI",
    }
    assert set(AWS_CLIENTS) == {s for s in C.CATALOG if s.startswith("aws_")}


# The grammar again, as a regular expression built independently from contract.json's fields.
_SERVICE_RE = re.compile(
    r"(?:%s)_[%s][%s]{0,%d}\Z"
    % ("|".join(C.PROVIDERS), re.escape(C.SERVICE_NAME_FIRST), re.escape(C.SERVICE_NAME_REST), C.SERVICE_NAME_MAX - 1)
)
_REGION_RE = re.compile(r"[%s]{%d,%d}\Z" % (re.escape(C.REGION_CHARS), C.REGION_MIN, C.REGION_MAX))
_ALPHABET = st.sampled_from(list("abcz09_-:/. AZé\n") + list(C.PROVIDERS))


@given(st.lists(_ALPHABET, max_size=12).map("".join))
def test_service_grammar_matches_a_regex_of_the_contract(text):
    assert contract.is_service(text) == bool(_SERVICE_RE.match(text))


@given(st.text(alphabet=st.sampled_from(list("az09-_:. Ué\n")), max_size=40))
def test_region_grammar_matches_a_regex_of_the_contract(text):
    assert contract.is_region(text) == bool(_REGION_RE.match(text))


@given(
    st.sampled_from(C.CATALOG),
    st.from_regex(_REGION_RE, fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
)
def test_every_valid_triple_makes_a_valid_key(service, region, tenant, role):
    spiffe_id = "spiffe://hexr.local/agent/%s/a/%s" % (tenant, role)
    assert contract.is_agent_spiffe_id(spiffe_id)
    assert contract.is_credential_key(contract.credential_key(spiffe_id, service, region))


# ---- the vault's part of the contract (docs/vault-api.md) ----------------------------------------


@needs_repo
def test_generated_module_carries_the_vault_section():
    vault = json.loads(CONTRACT_JSON.read_text(encoding="utf-8"))["vault"]
    assert (C.VAULT_SECRETS_PATH, C.VAULT_AUDIT_PATH, C.VAULT_BATCH_NAME) == (vault["secrets_path"], vault["audit_path"], vault["batch_name"])
    assert (C.VAULT_NAME_MIN, C.VAULT_NAME_MAX) == (vault["name"]["min"], vault["name"]["max"])
    assert (C.VAULT_MAX_VALUE_BYTES, C.VAULT_MAX_BATCH_NAMES) == (vault["max_value_bytes"], vault["max_batch_names"])
    assert 409 in C.ERROR_STATUSES["BadRequest"]


# The name grammar again, as the document writes it: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$
_SECRET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


@given(st.text(alphabet=st.sampled_from(list("aZ09_.-/ :%?é\x00*")), max_size=140))
def test_secret_name_grammar_matches_the_documents_regex(text):
    assert contract.is_secret_name(text) == bool(_SECRET_NAME_RE.match(text))


def test_secret_names_never_collide_with_the_batch_route_or_leave_their_path_segment():
    assert not contract.is_secret_name(C.VAULT_BATCH_NAME)
    assert all(contract.is_secret_name(n) for n in ("OPENAI_API_KEY", "a", "db.password", "x-1", "N" * 128))
    assert not any(contract.is_secret_name(n) for n in ("", ".", "..", ".env", "a/b", "N" * 129, None, 5))
