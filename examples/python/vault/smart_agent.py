"""The vault guide's full example, as written: it stores two secrets, makes an LLM call through the
sidecar (which adds the OPENAI_API_KEY just stored, from the vault, in this agent's scope: the
process never sends it), and lists the names this agent holds (never a value).

    HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/smart-agent.jwt python smart_agent.py

with the identity spiffe://hexr.local/agent/acme-corp/smart-agent/main.
"""

from hexr import hexr_agent, hexr_llm
from hexr.vault import VaultClient

@hexr_agent(name="smart-agent", tenant="acme-corp")
def main():
    vault = VaultClient()

    # Store secrets during setup
    vault.put("OPENAI_API_KEY", "sk-proj-...")
    vault.put("SLACK_WEBHOOK", "https://hooks.slack.com/...")

    # Use them
    response = hexr_llm(
        provider="openai",
        model="gpt-4o",
        prompt="Generate a status report",
    )

    # List all secrets (keys only, not values)
    keys = vault.list()
    print(f"Stored secrets: {keys}")
    # → ["OPENAI_API_KEY", "SLACK_WEBHOOK"]


if __name__ == "__main__":
    main()
