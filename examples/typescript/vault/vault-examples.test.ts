// Runs each of the vault guide's TypeScript samples as its own process, as written, against the
// SDK's loopback stand-in for the sidecar and the vault (sdk/typescript/test/fake-vault.ts), each
// with the identity its agent has (a JWT-SVID file). The run against the real sidecar and vault
// is the lead's (e2e/).
import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { startFakeVault, type FakeVault } from "../../../sdk/typescript/test/fake-vault.ts";
import { tempDir, unsignedJwt } from "../../../sdk/typescript/test/helpers.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const TSX = fileURLToPath(new URL("../../../node_modules/tsx/dist/cli.mjs", import.meta.url));
let fake: FakeVault;
let dir: string;

beforeAll(async () => {
  fake = await startFakeVault();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  dir = tempDir("vault-examples");
});

async function run(sample: string, spiffeId: string, role?: string): Promise<string> {
  const tokenFile = path.join(dir, `${spiffeId.replaceAll("/", "_").replace(":", "")}.jwt`);
  writeFileSync(tokenFile, unsignedJwt(spiffeId), { mode: 0o600 });
  const result = await promisify(execFile)(process.execPath, [TSX, path.join(HERE, sample)], {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      HEXR_SIDECAR_URL: fake.url,
      HEXR_JWT_SVID_FILE: tokenFile,
      HEXR_CONTEXT_DIR: path.join(dir, "context"),
      ...(role ? { HEXR_PROCESS_ROLE: role } : {}),
    },
    timeout: 60_000,
  });
  return result.stdout;
}

it("my-agent, then its secretsBatch sibling", async () => {
  const me = "spiffe://hexr.local/agent/acme-corp/my-agent/main";
  expect(await run("my-agent.ts", me)).toBe("OPENAI_API_KEY retrieved (6 characters)\n");
  expect(fake.requests.map((r) => [r.method, r.path, r.body])).toEqual([
    ["PUT", "/v1/secrets/OPENAI_API_KEY", { value: "sk-..." }],
    ["GET", "/v1/secrets/OPENAI_API_KEY", undefined],
  ]);
  fake.requests.length = 0;
  expect(await run("my-agent-secrets-batch.ts", me)).toBe("stored a placeholder for ANTHROPIC_API_KEY\nOpenAI key starts with: sk-......\n");
  const batches = fake.requests.filter((r) => r.path === "/v1/secrets/_batch");
  expect(batches.map((r) => r.body)).toEqual([{ names: ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] }]);
  expect(existsSync(path.join(dir, "context", "my-agent-main.json"))).toBe(true);
});

it("scoped-secrets: the researcher stores, the writer is denied the researcher's secret", async () => {
  const base = "spiffe://hexr.local/agent/acme-corp/my-agent/";
  expect((await run("scoped-secrets.ts", `${base}researcher`, "researcher")).trim().split("\n")).toEqual([
    "researcher: stored SHARED_KEY (agent-level) and RESEARCH_DB_KEY (researcher only)",
    "researcher: SHARED_KEY readable (5 characters)",
    "researcher: RESEARCH_DB_KEY readable",
    'researcher: can list ["RESEARCH_DB_KEY","SHARED_KEY"]',
  ]);
  expect(fake.secret(`${base}researcher`, "RESEARCH_DB_KEY")?.scope).toBe("researcher");
  expect((await run("scoped-secrets.ts", `${base}writer`, "writer")).trim().split("\n")).toEqual([
    "writer: SHARED_KEY readable (5 characters)",
    "writer: RESEARCH_DB_KEY denied (403 CredentialError)",
    'writer: can list ["SHARED_KEY"]',
  ]);
});

it("smart-agent", async () => {
  expect(await run("smart-agent.ts", "spiffe://hexr.local/agent/acme-corp/smart-agent/main")).toBe('Stored secrets: ["OPENAI_API_KEY","SLACK_WEBHOOK"]\n');
});
