"""The content crew's LLM calls (the seeds' per-role cost attribution): the same source runs as
three role processes, each asking its model through the sidecar with hexr_llm. No process holds a
key: the sidecar adds the crew's OPENAI_API_KEY from the vault, and records every token under the
SPIFFE ID of the role that spent it (spiffe://{td}/agent/acme-corp/content-crew/{role}).

    hexr build crew_llm.py --tenant acme-corp
    hexr run --role researcher -- python crew_llm.py     # as root: each role under its own uid
    hexr run --role writer     -- python crew_llm.py
    hexr run --role editor     -- python crew_llm.py

or, with JWT-SVID files from elsewhere:

    HEXR_PROCESS_ROLE=writer HEXR_JWT_SVID_FILE=/run/hexr/writer.jwt python crew_llm.py

The crew's key must be in the vault first (agent-level, so every role's calls can use it), e.g. as
any role: python -c 'from hexr.vault import VaultClient; VaultClient().put("OPENAI_API_KEY", "sk-proj-...")'.
Each role may use only the models OPA grants it (policy/data.json). Prints one JSON line per role:
its model and the tokens the provider reported (never the prompt or the answer's text).
"""

import json
import os

from hexr import hexr_agent, hexr_llm

ROLE = os.environ.get("HEXR_PROCESS_ROLE", "main")
HEXR_ROLES = ("researcher", "writer", "editor")
WORK = {
    "researcher": ("gpt-4o", "List five facts about the history of tea, with sources."),
    "writer": ("gpt-4o", "Write a 500-word article about the history of tea for a general audience."),
    "editor": ("gpt-4o-mini", "Proofread this paragraph and list every change: Tea was first drank in China."),
}


@hexr_agent(name="content-crew", tenant="acme-corp", role=ROLE)
def main():
    model, prompt = WORK[ROLE]
    response = hexr_llm(provider="openai", model=model, prompt=prompt)
    usage = response["usage"]
    print(json.dumps({"role": ROLE, "model": model, "input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]}))


if __name__ == "__main__":
    main()
