// The vault guide's step 1 (VaultClient), in TypeScript: store a secret, scoped to this agent's
// SPIFFE identity and encrypted at rest by the vault, then read it back.
//
//   HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/my-agent.jwt npx tsx examples/typescript/vault/my-agent.ts
//
// The identity (here spiffe://hexr.local/agent/acme-corp/my-agent/main) comes from
// SPIFFE_ENDPOINT_SOCKET (the SPIFFE Workload API) or HEXR_JWT_SVID_FILE; the vault's namespace
// is its (trust domain, tenant, agent). Never prints a value.
import { hexrAgent, VaultClient } from "../../../sdk/typescript/src/index.ts";

const main = hexrAgent({ name: "my-agent", tenant: "acme-corp" }, async () => {
  const vault = new VaultClient();

  // Store a secret (encrypted at rest, scoped to this agent)
  await vault.put("OPENAI_API_KEY", "sk-...");

  // Retrieve it
  const key = await vault.get("OPENAI_API_KEY");

  // Added to the guide's sample: show that it worked, without printing the value.
  console.log(`OPENAI_API_KEY retrieved (${key.length} characters)`);
});

await main();
