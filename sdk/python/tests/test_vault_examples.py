"""examples/python/vault/: each of the vault guide's samples run as its own process, as written,
against the loopback stand-in for the sidecar and the vault (tests/fake_vault.py), each with the
identity its agent has (a JWT-SVID file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unsigned_jwt
from fake_vault import FakeVault

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python" / "vault"

pytestmark = pytest.mark.skipif(not EXAMPLES.exists(), reason="examples/ is not beside this package")


@pytest.fixture
def fake():
    vault = FakeVault()
    yield vault
    vault.close()


def run(fake: FakeVault, tmp_path: Path, sample: str, spiffe_id: str, role: str = "") -> str:
    token = tmp_path / ("%s.jwt" % spiffe_id.replace("/", "_").replace(":", ""))
    token.write_text(unsigned_jwt(spiffe_id))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HEXR_SIDECAR_URL": fake.url,
        "HEXR_JWT_SVID_FILE": str(token),
        "HEXR_CONTEXT_DIR": str(tmp_path / "context"),
    }
    if role:
        env["HEXR_PROCESS_ROLE"] = role
    result = subprocess.run([sys.executable, str(EXAMPLES / sample)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_my_agent_and_its_secrets_batch(fake, tmp_path):
    me = "spiffe://hexr.local/agent/acme-corp/my-agent/main"
    assert run(fake, tmp_path, "my_agent.py", me) == "OPENAI_API_KEY retrieved (6 characters)\n"
    assert [(r["method"], r["path"], r["body"]) for r in fake.requests] == [
        ("PUT", "/v1/secrets/OPENAI_API_KEY", {"value": "sk-..."}),
        ("GET", "/v1/secrets/OPENAI_API_KEY", None),
    ]
    fake.requests.clear()
    out = run(fake, tmp_path, "my_agent_secrets_batch.py", me)
    assert out == "stored a placeholder for ANTHROPIC_API_KEY\nOpenAI key starts with: sk-......\n"
    assert [r["path"] for r in fake.requests][-1] == "/v1/secrets/_batch"
    assert fake.requests[-1]["body"] == {"names": ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]}
    assert sum(1 for r in fake.requests if r["path"] == "/v1/secrets/_batch") == 1
    assert (tmp_path / "context" / "my-agent-main.json").exists()


def test_scoped_secrets_researcher_then_writer(fake, tmp_path):
    base = "spiffe://hexr.local/agent/acme-corp/my-agent/"
    out = run(fake, tmp_path, "scoped_secrets.py", base + "researcher", "researcher")
    assert out.splitlines() == [
        "researcher: stored SHARED_KEY (agent-level) and RESEARCH_DB_KEY (researcher only)",
        "researcher: SHARED_KEY readable (5 characters)",
        "researcher: RESEARCH_DB_KEY readable",
        "researcher: can list ['RESEARCH_DB_KEY', 'SHARED_KEY']",
    ]
    assert fake.secret(base + "researcher", "RESEARCH_DB_KEY").scope == "researcher"
    assert fake.secret(base + "researcher", "SHARED_KEY").scope == "*"
    out = run(fake, tmp_path, "scoped_secrets.py", base + "writer", "writer")
    assert out.splitlines() == [
        "writer: SHARED_KEY readable (5 characters)",
        "writer: RESEARCH_DB_KEY denied (403 CredentialError)",
        "writer: can list ['SHARED_KEY']",
    ]


# smart_agent.py also calls hexr_llm: e2e/llm.test.ts runs it against the real sidecar, vault and
# LLM route (this stand-in serves the vault only).
