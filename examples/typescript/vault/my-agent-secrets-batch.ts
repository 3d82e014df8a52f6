// The vault guide's step 2 (secrets injected into the function), in TypeScript: secretsBatch()
// fetches both secrets in one round trip (POST /v1/secrets/_batch) and passes them as the
// function's first argument.
//
//   HEXR_SIDECAR_URL=http://127.0.0.1:15080 HEXR_JWT_SVID_FILE=/run/hexr/my-agent.jwt \
//     npx tsx examples/typescript/vault/my-agent-secrets-batch.ts
//
// Same agent as my-agent.ts (spiffe://hexr.local/agent/acme-corp/my-agent/main), so the same
// namespace. A missing secret rejects with SecretNotFoundError and the function is not called:
// the setup below (not part of the guide's sample) stores placeholders for the missing ones.
import { hexrAgent, secretsBatch, SecretNotFoundError, VaultClient } from "../../../sdk/typescript/src/index.ts";

const main = hexrAgent(
  { name: "my-agent", tenant: "acme-corp" },
  secretsBatch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], async ({ OPENAI_API_KEY }) => {
    // Secrets injected as the function's first argument
    console.log(`OpenAI key starts with: ${OPENAI_API_KEY.slice(0, 8)}...`);
  }),
);

/** Stores a placeholder for each secret this agent does not have yet (an operator would store the real ones, once). */
const setup = hexrAgent({ name: "my-agent", tenant: "acme-corp" }, async () => {
  const vault = new VaultClient();
  for (const [name, placeholder] of [["OPENAI_API_KEY", "sk-..."], ["ANTHROPIC_API_KEY", "sk-ant-..."]]) {
    try {
      await vault.get(name);
    } catch (error) {
      if (!(error instanceof SecretNotFoundError)) throw error;
      await vault.put(name, placeholder);
      console.log(`stored a placeholder for ${name}`);
    }
  }
});

await setup();
await main();
