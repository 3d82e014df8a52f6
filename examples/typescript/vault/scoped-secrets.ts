// The vault guide's step 3 (scopes), in TypeScript: an agent-level secret every role of the
// agent reads, and a role-level one only the researcher reads. Run it as two processes of one
// agent, each with its own identity (spiffe://hexr.local/agent/acme-corp/my-agent/{role}):
//
//   HEXR_PROCESS_ROLE=researcher HEXR_JWT_SVID_FILE=/run/hexr/researcher.jwt npx tsx examples/typescript/vault/scoped-secrets.ts
//   HEXR_PROCESS_ROLE=writer     HEXR_JWT_SVID_FILE=/run/hexr/writer.jwt     npx tsx examples/typescript/vault/scoped-secrets.ts
//
// The researcher stores both secrets; the writer reads SHARED_KEY and, trying RESEARCH_DB_KEY,
// receives an access denied error (AccessDeniedError, 403). Never prints a value.
import { AccessDeniedError, hexrAgent, VaultClient } from "../../../sdk/typescript/src/index.ts";

const role = process.env.HEXR_PROCESS_ROLE ?? "main";

const main = hexrAgent({ name: "my-agent", tenant: "acme-corp", role }, async () => {
  const vault = new VaultClient();
  if (role === "researcher") {
    // Agent-level: all processes in this agent can access
    await vault.put("SHARED_KEY", "value");
    // Stored with scope: spiffe://hexr.local/agent/acme-corp/my-agent/*

    // Process-level: only the researcher process can access
    await vault.put("RESEARCH_DB_KEY", "value", { scope: "researcher" });
    // Stored with scope: spiffe://hexr.local/agent/acme-corp/my-agent/researcher
    console.log("researcher: stored SHARED_KEY (agent-level) and RESEARCH_DB_KEY (researcher only)");
  }

  console.log(`${role}: SHARED_KEY readable (${(await vault.get("SHARED_KEY")).length} characters)`);
  try {
    await vault.get("RESEARCH_DB_KEY");
    console.log(`${role}: RESEARCH_DB_KEY readable`);
  } catch (error) {
    if (!(error instanceof AccessDeniedError)) throw error;
    // A writer process trying to read RESEARCH_DB_KEY receives an access denied error.
    console.log(`${role}: RESEARCH_DB_KEY denied (${error.status} ${error.type})`);
  }
  console.log(`${role}: can list ${JSON.stringify(await vault.list())}`);
});

await main();
