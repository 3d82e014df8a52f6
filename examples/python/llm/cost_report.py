"""The seeds' per-role cost tree, from the usage the sidecar recorded: every identity's LLM tokens
and dollars, grouped agent -> role -> model (GET {HEXR_SIDECAR_URL}/v1/llm/usage).

Only an identity listed in the LLM filter's `llm.admin_spiffe_ids` sees every identity's usage
(any other sees its own): in the local stack that is this agent,
spiffe://hexr.local/agent/hexr-system/cost-auditor/main.

    hexr build cost_report.py --tenant hexr-system
    hexr run --role main -- python cost_report.py

or HEXR_JWT_SVID_FILE=/run/hexr/cost-auditor.jwt python cost_report.py. `hexr usage` prints the same.
"""

from hexr import hexr_agent
from hexr.llm import cost_tree, usage


@hexr_agent(name="cost-auditor", tenant="hexr-system")
def main():
    print(cost_tree(usage()))


if __name__ == "__main__":
    main()
