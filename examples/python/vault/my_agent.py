"""The vault guide's step 1 (VaultClient), as written: store a secret, scoped to this agent's
SPIFFE identity and encrypted at rest by the vault, then read it back.

    HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/my-agent.jwt python my_agent.py

The identity (here spiffe://hexr.local/agent/acme-corp/my-agent/main) comes from
SPIFFE_ENDPOINT_SOCKET (the SPIFFE Workload API) or HEXR_JWT_SVID_FILE; the vault's namespace is
its (trust domain, tenant, agent). Never prints a value.
"""

from hexr import hexr_agent
from hexr.vault import VaultClient

@hexr_agent(name="my-agent", tenant="acme-corp")
def main():
    vault = VaultClient()

    # Store a secret (encrypted at rest, scoped to this agent)
    vault.put("OPENAI_API_KEY", "sk-...")

    # Retrieve it
    key = vault.get("OPENAI_API_KEY")

    # Added to the guide's sample: show that it worked, without printing the value.
    print(f"OPENAI_API_KEY retrieved ({len(key)} characters)")


if __name__ == "__main__":
    main()
