"""The vault guide's step 3 (scopes): an agent-level secret every role of the agent reads, and a
role-level one only the researcher reads. Run it as two processes of one agent, each with its
own identity (spiffe://hexr.local/agent/acme-corp/my-agent/{role}):

    HEXR_PROCESS_ROLE=researcher HEXR_JWT_SVID_FILE=/run/hexr/researcher.jwt python scoped_secrets.py
    HEXR_PROCESS_ROLE=writer     HEXR_JWT_SVID_FILE=/run/hexr/writer.jwt     python scoped_secrets.py

The researcher stores both secrets; the writer reads SHARED_KEY and, trying RESEARCH_DB_KEY,
receives an access denied error (AccessDeniedError, 403). Never prints a value.
"""

import os

from hexr import hexr_agent
from hexr.vault import AccessDeniedError, VaultClient

ROLE = os.environ.get("HEXR_PROCESS_ROLE", "main")
HEXR_ROLES = ("researcher", "writer")


@hexr_agent(name="my-agent", tenant="acme-corp", role=ROLE)
def main():
    vault = VaultClient()
    if ROLE == "researcher":
        # Agent-level: all processes in this agent can access
        vault.put("SHARED_KEY", "value")
        # Stored with scope: spiffe://hexr.local/agent/acme-corp/my-agent/*

        # Process-level: only the researcher process can access
        vault.put("RESEARCH_DB_KEY", "value", scope="researcher")
        # Stored with scope: spiffe://hexr.local/agent/acme-corp/my-agent/researcher
        print("researcher: stored SHARED_KEY (agent-level) and RESEARCH_DB_KEY (researcher only)")

    print(f"{ROLE}: SHARED_KEY readable ({len(vault.get('SHARED_KEY'))} characters)")
    try:
        vault.get("RESEARCH_DB_KEY")
        print(f"{ROLE}: RESEARCH_DB_KEY readable")
    except AccessDeniedError as error:
        # A writer process trying to read RESEARCH_DB_KEY receives an access denied error.
        print(f"{ROLE}: RESEARCH_DB_KEY denied ({error.status} {error.type})")
    print(f"{ROLE}: can list {vault.list()}")


if __name__ == "__main__":
    main()
