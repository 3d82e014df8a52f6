"""What the stack tests share: identities (JWT-SVID files minted by e2e/sdk-python.test.ts) and
the sidecar call counter."""

import hashlib
import os

import hexr.sidecar

IDS = {
    "researcher": "spiffe://hexr.local/agent/acme-corp/research-analyst/main",
    "analyst": "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main",
    "probe": "spiffe://hexr.local/agent/acme-corp/sdk-probe/main",
    "readonly": "spiffe://hexr.local/agent/acme-corp/read-only-agent/main",
    "stranger": "spiffe://hexr.local/agent/acme-corp/no-such-agent/main",
}


def use_identity(monkeypatch, name: str) -> str:
    """Points HEXR_JWT_SVID_FILE at the minted JWT-SVID of a dev identity; returns its SPIFFE ID."""
    monkeypatch.setenv("HEXR_JWT_SVID_FILE", os.path.join(os.environ["HEXR_TEST_JWT_DIR"], name + ".jwt"))
    return IDS[name]


def sidecar_calls() -> int:
    return hexr.sidecar.exchanger().sidecar_calls


def fp(value: str) -> str:
    """A fingerprint: what assertions compare, so that a failure never prints a token or key."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
