"""The vault guide's step 2 (@secrets_batch), as written: the secrets arrive as the function's
parameters, both fetched in one round trip (POST /v1/secrets/_batch).

    HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/my-agent.jwt \
        python my_agent_secrets_batch.py

Same agent as my_agent.py (spiffe://hexr.local/agent/acme-corp/my-agent/main), so the same
namespace. A missing secret is a SecretNotFoundError and main() is not called: the setup below
(not part of the guide's sample) stores placeholders for the ones not stored yet.
"""

from hexr import hexr_agent
from hexr.vault import SecretNotFoundError, VaultClient, secrets_batch

@hexr_agent(name="my-agent", tenant="acme-corp")
@secrets_batch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
def main(OPENAI_API_KEY: str, ANTHROPIC_API_KEY: str):
    # Secrets injected as function parameters
    print(f"OpenAI key starts with: {OPENAI_API_KEY[:8]}...")


@hexr_agent(name="my-agent", tenant="acme-corp")
def setup():
    """Stores a placeholder for each secret this agent does not have yet (an operator would
    store the real ones, once)."""
    vault = VaultClient()
    for name, placeholder in (("OPENAI_API_KEY", "sk-..."), ("ANTHROPIC_API_KEY", "sk-ant-...")):
        try:
            vault.get(name)
        except SecretNotFoundError:
            vault.put(name, placeholder)
            print(f"stored a placeholder for {name}")


if __name__ == "__main__":
    setup()
    main()
