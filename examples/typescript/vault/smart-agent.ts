// The vault guide's full example, in TypeScript, except for the LLM call: hexr_llm (hexrLlm) is
// not part of the SDK yet, so its call is left out (commented below). It stores two secrets and
// lists the names this agent holds (never a value).
//
//   HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/smart-agent.jwt npx tsx examples/typescript/vault/smart-agent.ts
//
// with the identity spiffe://hexr.local/agent/acme-corp/smart-agent/main.
import { hexrAgent, VaultClient } from "../../../sdk/typescript/src/index.ts"; // the guide also imports hexr_llm, which does not exist yet

const main = hexrAgent({ name: "smart-agent", tenant: "acme-corp" }, async () => {
  const vault = new VaultClient();

  // Store secrets during setup
  await vault.put("OPENAI_API_KEY", "sk-proj-...");
  await vault.put("SLACK_WEBHOOK", "https://hooks.slack.com/...");

  // Use them
  // Left out until hexr_llm exists in the SDK:
  // const response = await hexrLlm({ provider: "openai", model: "gpt-4o", prompt: "Generate a status report" });

  // List all secrets (keys only, not values)
  const keys = await vault.list();
  console.log(`Stored secrets: ${JSON.stringify(keys)}`);
  // → ["OPENAI_API_KEY","SLACK_WEBHOOK"]
});

await main();
