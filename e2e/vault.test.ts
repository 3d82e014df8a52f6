// Hexr Vault through the real sidecar: the vault door names the caller, Envoy forwards to the
// real vault process (SQLite, a key file) over mTLS, and the vault decides by scope. Agents of
// the content crew (one agent, three roles), another agent of the tenant and another tenant
// probe each other's secrets; nothing ever shows a value outside its answer.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueX509Svid, mintJwtSvid } from "../support/dev-identity.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { VAULT_ADMIN_ID, startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, expectContractError, expectNoSecretsInLogs, request, summary, type HttpAnswer } from "./helpers.ts";

const CREW = "spiffe://hexr.local/agent/acme-corp/content-crew";
const RESEARCHER = `${CREW}/researcher`;
const WRITER = `${CREW}/writer`;
const OTHER_AGENT = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main";
const OTHER_TENANT = "spiffe://hexr.local/agent/globex/content-crew/researcher";

let stack: Stack;
const tokens = new Map<string, string>();
const ledger = new SecretLedger();

beforeAll(async () => {
  stack = await startStack({
    // The dev sidecar stands in for globex's pods too (the vault trusts it for both tenants).
    bridgeCallers: [{ spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["globex"] }],
  });
  for (const id of [RESEARCHER, WRITER, OTHER_AGENT, OTHER_TENANT, VAULT_ADMIN_ID]) tokens.set(id, ledger.token(await mintJwtSvid(id)));
});

afterAll(async () => {
  await stack?.stop();
});

/** A request to the sidecar's vault door as `id` (a JWT-SVID), or with no identity. */
function vault(id: string | null, method: string, path: string, body?: object | string, headers: [string, string][] = []): Promise<HttpAnswer> {
  const all: [string, string][] = [...headers];
  if (id) all.push(["authorization", `Bearer ${tokens.get(id)}`]);
  if (body !== undefined) all.push(["content-type", "application/json"]);
  return request(`${stack.envoy.agentUrl}${path}`, { method, headers: all, body: typeof body === "string" ? body : body === undefined ? undefined : JSON.stringify(body) });
}

const secret = () => ledger.value(`sk-${randomBytes(24).toString("base64url")}`);

describe("secrets through the sidecar", () => {
  it("puts, gets, lists and deletes an agent-level secret, which every role of the agent reads", async () => {
    const value = secret();
    const put = await vault(RESEARCHER, "PUT", "/v1/secrets/OPENAI_API_KEY", { value });
    expect(put.status, summary(put)).toBe(201);
    expect(put.json).toMatchObject({ name: "OPENAI_API_KEY", scope: "*", version: 1 });
    expect(put.headers["cache-control"]).toBe("no-store");
    for (const id of [RESEARCHER, WRITER]) {
      const got = await vault(id, "GET", "/v1/secrets/OPENAI_API_KEY");
      expect(got.status, summary(got)).toBe(200);
      expect(got.json).toMatchObject({ name: "OPENAI_API_KEY", scope: "*", version: 1, value });
    }
    const newer = secret();
    expect((await vault(WRITER, "PUT", "/v1/secrets/OPENAI_API_KEY", { value: newer })).json.version).toBe(2);
    expect((await vault(RESEARCHER, "GET", "/v1/secrets/OPENAI_API_KEY")).json.value).toBe(newer);
    expect((await vault(RESEARCHER, "GET", "/v1/secrets/OPENAI_API_KEY?version=1")).json.value).toBe(value);
    const listed = await vault(WRITER, "GET", "/v1/secrets");
    expect(listed.json.secrets.map((s: { name: string }) => s.name)).toContain("OPENAI_API_KEY");
    expect(listed.text).not.toContain(newer);
    expect((await vault(WRITER, "DELETE", "/v1/secrets/OPENAI_API_KEY")).status).toBe(204);
    expectContractError(await vault(RESEARCHER, "GET", "/v1/secrets/OPENAI_API_KEY"), 404, "BadRequest");
  });

  it("keeps a role-level secret to its role: the writer gets 403 for the researcher's (the seeds' case)", async () => {
    const value = secret();
    const put = await vault(RESEARCHER, "PUT", "/v1/secrets/RESEARCH_DB_KEY?scope=researcher", { value });
    expect(put.status, summary(put)).toBe(201);
    expect(put.json.scope).toBe("researcher");
    expect((await vault(RESEARCHER, "GET", "/v1/secrets/RESEARCH_DB_KEY")).json.value).toBe(value);
    for (const [method, body] of [["GET", undefined], ["PUT", { value: secret() }], ["DELETE", undefined]] as const) {
      const denied = await vault(WRITER, method, "/v1/secrets/RESEARCH_DB_KEY", body);
      expectContractError(denied, 403, "CredentialError");
      expect(denied.text).not.toContain(value);
    }
    const writersList = await vault(WRITER, "GET", "/v1/secrets");
    expect(writersList.json.secrets.map((s: { name: string }) => s.name)).not.toContain("RESEARCH_DB_KEY");
    expect((await vault(RESEARCHER, "GET", "/v1/secrets/RESEARCH_DB_KEY")).json.value).toBe(value);
  });

  it("gives another agent and another tenant nothing, not even that the name exists", async () => {
    const value = secret();
    expect((await vault(RESEARCHER, "PUT", "/v1/secrets/SHARED_NAME", { value })).status).toBe(201);
    for (const id of [OTHER_AGENT, OTHER_TENANT]) {
      const probe = await vault(id, "GET", "/v1/secrets/SHARED_NAME");
      const never = await vault(id, "GET", "/v1/secrets/NEVER_STORED_ANYWHERE");
      expectContractError(probe, 404, "BadRequest");
      expect(probe.json.error.message.replace("SHARED_NAME", "NAME")).toBe(never.json.error.message.replace("NEVER_STORED_ANYWHERE", "NAME"));
      expect((await vault(id, "GET", "/v1/secrets")).json.secrets).toEqual([]);
      // Their own secret of that name is a different secret.
      const theirs = secret();
      expect((await vault(id, "PUT", "/v1/secrets/SHARED_NAME", { value: theirs })).json.version).toBe(1);
      expect((await vault(id, "GET", "/v1/secrets/SHARED_NAME")).json.value).toBe(theirs);
    }
    expect((await vault(RESEARCHER, "GET", "/v1/secrets/SHARED_NAME")).json.value).toBe(value);
  });

  it("answers a batch in one round trip, all or nothing", async () => {
    const [a, b] = [secret(), secret()];
    await vault(WRITER, "PUT", "/v1/secrets/BATCH_A", { value: a });
    await vault(WRITER, "PUT", "/v1/secrets/BATCH_B?scope=writer", { value: b });
    const both = await vault(WRITER, "POST", "/v1/secrets/_batch", { names: ["BATCH_A", "BATCH_B"] });
    expect(both.status, summary(both)).toBe(200);
    expect(both.json.secrets.BATCH_A.value).toBe(a);
    expect(both.json.secrets.BATCH_B.value).toBe(b);
    const denied = await vault(RESEARCHER, "POST", "/v1/secrets/_batch", { names: ["BATCH_A", "BATCH_B"] });
    expectContractError(denied, 403, "CredentialError");
    expect(denied.text).not.toContain(a);
  });

  it("serves an agent presenting its X.509-SVID on the mTLS listener", async () => {
    const svid = await issueX509Svid(WRITER);
    const value = secret();
    const tls = { ...svid, ca: stack.identity.ca };
    const put = await request(`${stack.envoy.agentMtlsUrl}/v1/secrets/MTLS_KEY?scope=writer`, {
      method: "PUT", headers: [["content-type", "application/json"]], body: JSON.stringify({ value }), tls,
    });
    expect(put.status, summary(put)).toBe(201);
    expect((await vault(WRITER, "GET", "/v1/secrets/MTLS_KEY")).json.value).toBe(value);
  });
});

describe("what the vault believes", () => {
  it("only the filter names the caller: a client's x-hexr-spiffe-id is dropped", async () => {
    const value = secret();
    await vault(RESEARCHER, "PUT", "/v1/secrets/SPOOF_TARGET?scope=researcher", { value });
    const spoofed = await vault(WRITER, "GET", "/v1/secrets/SPOOF_TARGET", undefined, [["x-hexr-spiffe-id", RESEARCHER], ["x-hexr-identity-source", "static"]]);
    expectContractError(spoofed, 403, "CredentialError");
    const anonymous = await vault(null, "GET", "/v1/secrets/SPOOF_TARGET", undefined, [["x-hexr-spiffe-id", RESEARCHER]]);
    expectContractError(anonymous, 401, "AuthenticationError");
  });

  it("refuses a direct call without a sidecar's certificate, and an agent's own certificate", async () => {
    const url = `${stack.parts.vault!.url}/v1/secrets/SPOOF_TARGET`;
    await expect(request(url, { headers: [["x-hexr-spiffe-id", RESEARCHER]], tls: { ca: stack.identity.ca } })).rejects.toThrow();
    const agent = await issueX509Svid(RESEARCHER);
    const asAgent = await request(url, { headers: [["x-hexr-spiffe-id", RESEARCHER]], tls: { ...agent, ca: stack.identity.ca } });
    expectContractError(asAgent, 403, "CredentialError");
  });

  it("refuses bad input with the contract's error and stores nothing", async () => {
    expectContractError(await vault(WRITER, "PUT", "/v1/secrets/bad%20name", { value: "x" }), 400, "BadRequest");
    expectContractError(await vault(WRITER, "PUT", "/v1/secrets/HUGE", { value: "x".repeat(70_000) }), 413, "BadRequest");
    expectContractError(await vault(WRITER, "PATCH", "/v1/secrets/HUGE", { value: "x" }), 405, "BadRequest");
    expectContractError(await vault(WRITER, "PUT", "/v1/secrets/HUGE", "{not json"), 400, "BadRequest");
    expectContractError(await vault(WRITER, "PUT", "/v1/secrets/HUGE", { value: "x", extra: 1 }), 400, "BadRequest");
    expectContractError(await vault(null, "PUT", "/v1/secrets/HUGE", { value: "x" }), 401, "AuthenticationError");
    expectContractError(await vault(WRITER, "GET", "/v1/secrets/HUGE"), 404, "BadRequest");
  });
});

describe("the seeds' samples, as written, with the Hexr SDK for Python", () => {
  const run = promisify(execFile);
  const samples = path.join(projectRoot, "examples", "python", "vault");
  async function sample(file: string, spiffeId: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-vault-sample-"));
    try {
      const tokenFile = path.join(dir, "svid.jwt");
      writeFileSync(tokenFile, ledger.token(await mintJwtSvid(spiffeId)), { mode: 0o600 });
      const { stdout } = await run(tools.python(), [path.join(samples, file)], {
        env: { PATH: process.env.PATH, HOME: dir, HEXR_SIDECAR_URL: stack.envoy.agentUrl, HEXR_JWT_SVID_FILE: tokenFile, HEXR_CONTEXT_DIR: dir, ...env },
      });
      return stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // The full example (smart_agent.py) makes an LLM call too: e2e/llm.test.ts runs it.
  it("VaultClient and secrets_batch (steps 1 and 2)", async () => {
    expect(await sample("my_agent.py", "spiffe://hexr.local/agent/acme-corp/my-agent/main")).toMatch(/OPENAI_API_KEY retrieved \(6 characters\)/);
    expect(await sample("my_agent_secrets_batch.py", "spiffe://hexr.local/agent/acme-corp/my-agent/main")).toMatch(/OpenAI key starts with: sk-\.\.\./);
  });

  it("scopes (step 3): the writer is denied the researcher's secret", async () => {
    expect(await sample("scoped_secrets.py", "spiffe://hexr.local/agent/acme-corp/my-agent/researcher", { HEXR_PROCESS_ROLE: "researcher" })).toMatch(/RESEARCH_DB_KEY readable/);
    const writer = await sample("scoped_secrets.py", "spiffe://hexr.local/agent/acme-corp/my-agent/writer", { HEXR_PROCESS_ROLE: "writer" });
    expect(writer).toMatch(/writer: SHARED_KEY readable/);
    expect(writer).toMatch(/writer: RESEARCH_DB_KEY denied \(403 CredentialError\)/);
  });
});

describe("the audit trail", () => {
  it("records every access without a value, chained, and only an admin reads and verifies it", async () => {
    const records = await vault(VAULT_ADMIN_ID, "GET", "/v1/audit?limit=1000");
    expect(records.status, summary(records)).toBe(200);
    const ops = records.json.records.map((r: { spiffe_id: string; name: string; status: number }) => [r.spiffe_id, r.name, r.status]);
    expect(ops).toContainEqual([WRITER, "RESEARCH_DB_KEY", 403]);
    expect(ops).toContainEqual([RESEARCHER, "RESEARCH_DB_KEY", 201]);
    const verified = await vault(VAULT_ADMIN_ID, "GET", "/v1/audit/verify");
    expect(verified.json).toMatchObject({ ok: true });
    expectContractError(await vault(WRITER, "GET", "/v1/audit"), 403, "CredentialError");
  });

  it("leaks no value, token or credential into any log", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
