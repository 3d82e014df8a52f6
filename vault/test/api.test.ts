// The wire API of docs/vault-api.md against a real vault (HTTPS, mTLS) on each engine: put, get,
// list, delete and batch for agent- and role-level secrets; the seeds' case (a writer reading the
// researcher's secret); other agents' and tenants' secrets, which are never reachable, listed or
// distinguishable from missing names; bad input, refused with the contract's error and nothing stored.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  agentId, ENGINES, engineFixture, expectError, GLOBEX_AGENT, OTHER_AGENT, SIDECAR_ACME, SIDECAR_GLOBEX, startTestVault, tempDir,
  testIdentity, vaultConfig, WRITER, type EngineFixture, type TestVault, type VaultClient,
} from "./helpers.ts";
import { VAULT } from "../../contract/index.ts";

describe.each(ENGINES)("the vault API on %s", (engine) => {
  let fixture: EngineFixture;
  let store: Record<string, unknown>;
  let vault: TestVault;
  let acme: VaultClient;
  let globex: VaultClient;
  const keys = tempDir();
  const count = async (table: string) => Number((await fixture.sql<{ n: number }>(store, `SELECT count(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    fixture = engineFixture(engine);
    store = await fixture.freshStore();
    vault = await startTestVault(vaultConfig(await testIdentity(), store, keys.dir));
    acme = await vault.client(SIDECAR_ACME);
    globex = await vault.client(SIDECAR_GLOBEX);
  });

  afterAll(async () => {
    await vault?.close();
    await fixture?.close();
    keys.remove();
  });

  it("puts, gets and versions an agent-level secret", async () => {
    const first = await acme.put("OPENAI_API_KEY", "sk-first-value");
    expect(first.status).toBe(201);
    expect(first.headers["cache-control"]).toBe("no-store");
    const created = first.json();
    expect(created).toEqual({ name: "OPENAI_API_KEY", scope: "*", version: 1, created_at: expect.any(String) });
    expect(new Date(created.created_at).toISOString()).toBe(created.created_at);

    expect((await acme.put("OPENAI_API_KEY", "sk-second-value", { token: true })).json().version).toBe(2);
    const latest = await acme.get("OPENAI_API_KEY");
    expect(latest.status).toBe(200);
    expect(latest.headers["cache-control"]).toBe("no-store");
    expect(latest.json()).toEqual({ name: "OPENAI_API_KEY", scope: "*", version: 2, value: "sk-second-value", created_at: expect.any(String) });
    expect((await acme.get("OPENAI_API_KEY", { version: 1 })).json().value).toBe("sk-first-value");
    // Every role of the agent reads an agent-level secret.
    expect((await acme.get("OPENAI_API_KEY", { as: WRITER, token: true })).json().value).toBe("sk-second-value");
    expectError(await acme.get("OPENAI_API_KEY", { version: 3 }), 404, "BadRequest");
  });

  it("keeps values byte for byte: empty, Unicode, the largest allowed", async () => {
    const values = ["", "żółć 🔑 \u0000 \\ \"quoted\"", "x".repeat(VAULT.maxValueBytes), "€".repeat(Math.floor(VAULT.maxValueBytes / 3))];
    for (const [index, value] of values.entries()) {
      expect((await acme.put(`VALUE_${index}`, value)).status).toBe(201);
      expect((await acme.get(`VALUE_${index}`)).json().value).toBe(value);
    }
  });

  it("scopes a role-level secret to its role: the seeds' writer gets 403, the contract's body", async () => {
    const put = await acme.put("RESEARCH_DB_KEY", "postgres://research-secret", { scope: "researcher" });
    expect(put.status).toBe(201);
    expect(put.json().scope).toBe("researcher");
    expect((await acme.get("RESEARCH_DB_KEY")).json().value).toBe("postgres://research-secret");

    const writer = await acme.get("RESEARCH_DB_KEY", { as: WRITER, token: true });
    const error = expectError(writer, 403, "CredentialError", ["postgres://research-secret"]);
    expect(error.message).toMatch(/RESEARCH_DB_KEY/);
    expectError(await acme.put("RESEARCH_DB_KEY", "overwrite", { as: WRITER, scope: "researcher" }), 403, "CredentialError");
    expectError(await acme.delete("RESEARCH_DB_KEY", { as: WRITER }), 403, "CredentialError");
    // Nor may the writer plant a secret for the researcher.
    expectError(await acme.put("PLANTED", "x", { as: WRITER, scope: "researcher" }), 403, "CredentialError");
    expectError(await acme.get("PLANTED"), 404, "BadRequest");
    // The researcher's secret is untouched.
    expect((await acme.get("RESEARCH_DB_KEY")).json()).toMatchObject({ version: 1, value: "postgres://research-secret" });
  });

  it("refuses a put that changes a secret's scope (409) and changes nothing", async () => {
    await acme.put("SCOPED", "v1", { scope: "researcher" });
    expectError(await acme.put("SCOPED", "v2"), 409, "BadRequest", ["v2"]);
    expectError(await acme.put("SCOPED", "v2", { scope: "*" }), 409, "BadRequest");
    await acme.put("SHARED", "v1");
    expectError(await acme.put("SHARED", "v2", { scope: "researcher" }), 409, "BadRequest");
    expect((await acme.get("SCOPED")).json()).toMatchObject({ scope: "researcher", version: 1, value: "v1" });
    expect((await acme.get("SHARED")).json()).toMatchObject({ scope: "*", version: 1, value: "v1" });
  });

  it("lists the names a caller may read, sorted, never a value", async () => {
    const as = agentId("acme-corp", "lister", "researcher");
    const writer = agentId("acme-corp", "lister", "writer");
    await acme.put("b-shared", "value-b", { as });
    await acme.put("a-research", "value-a", { as, scope: "researcher" });
    await acme.put("c-writer", "value-c", { as: writer, scope: "writer" });
    const listed = await acme.list({ as });
    expect(listed.status).toBe(200);
    expect(listed.json()).toEqual({
      secrets: [
        { name: "a-research", scope: "researcher", version: 1, created_at: expect.any(String) },
        { name: "b-shared", scope: "*", version: 1, created_at: expect.any(String) },
      ],
    });
    expect(listed.text).not.toMatch(/value-/);
    expect((await acme.list({ as: writer })).json().secrets.map((s: { name: string }) => s.name)).toEqual(["b-shared", "c-writer"]);
  });

  it("deletes every version", async () => {
    await acme.put("DOOMED", "one");
    await acme.put("DOOMED", "two");
    const deleted = await acme.delete("DOOMED");
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");
    expect(deleted.headers["cache-control"]).toBe("no-store");
    expectError(await acme.get("DOOMED"), 404, "BadRequest");
    expectError(await acme.get("DOOMED", { version: 1 }), 404, "BadRequest");
    expectError(await acme.delete("DOOMED"), 404, "BadRequest");
    const rows = await fixture.sql(store, "SELECT version FROM secret_versions WHERE name = $1", ["DOOMED"]);
    expect(rows).toEqual([]);
    // A new secret of that name starts again, with any scope.
    expect((await acme.put("DOOMED", "three", { scope: "researcher" })).json()).toMatchObject({ version: 1, scope: "researcher" });
  });

  it("serves a batch all or nothing, naming the missing or denied secret", async () => {
    const as = agentId("acme-corp", "batcher", "researcher");
    await acme.put("K1", "value-1", { as });
    await acme.put("K2", "value-2", { as, scope: "researcher" });
    await acme.put("K3", "value-3", { as: agentId("acme-corp", "batcher", "writer"), scope: "writer" });
    const batch = await acme.batch(["K2", "K1"], { as, token: true });
    expect(batch.status).toBe(200);
    expect(batch.headers["cache-control"]).toBe("no-store");
    expect(batch.json()).toEqual({
      secrets: {
        K1: { scope: "*", version: 1, value: "value-1", created_at: expect.any(String) },
        K2: { scope: "researcher", version: 1, value: "value-2", created_at: expect.any(String) },
      },
    });
    const missing = expectError(await acme.batch(["K1", "NOPE", "K3"], { as }), 404, "BadRequest", ["value-1"]);
    expect(missing.message).toMatch(/NOPE/);
    const denied = expectError(await acme.batch(["K1", "K3"], { as }), 403, "CredentialError", ["value-1", "value-3"]);
    expect(denied.message).toMatch(/K3/);
    expectError(await acme.batch([], { as }), 400, "BadRequest");
    expectError(await acme.batch(Array.from({ length: VAULT.maxBatchNames + 1 }, (_, i) => `N${i}`), { as }), 400, "BadRequest");
    expectError(await acme.batch(["K1", "K1"], { as }), 400, "BadRequest");
    expectError(await acme.batch(["bad name"], { as }), 400, "BadRequest");
  });

  it("keeps other agents' and tenants' secrets out of reach: 404 exactly as for a missing name, never listed", async () => {
    await acme.put("TENANT_SECRET", "acme-researcher-value");
    const missing = await acme.get("NEVER_EXISTED", { as: OTHER_AGENT });
    for (const probe of [
      await acme.get("TENANT_SECRET", { as: OTHER_AGENT }),
      await globex.get("TENANT_SECRET", { as: GLOBEX_AGENT }),
      await acme.get("TENANT_SECRET", { as: OTHER_AGENT, version: 1 }),
      await acme.delete("TENANT_SECRET", { as: OTHER_AGENT }),
    ]) {
      expect(probe.status).toBe(404);
      expect(probe.json()).toEqual({ error: { type: "BadRequest", message: expect.stringMatching(/TENANT_SECRET/) } });
      expect(probe.json().error.message.replace("TENANT_SECRET", "NEVER_EXISTED")).toBe(missing.json().error.message);
    }
    expectError(await acme.batch(["TENANT_SECRET"], { as: OTHER_AGENT }), 404, "BadRequest");
    expect((await acme.list({ as: OTHER_AGENT })).json()).toEqual({ secrets: [] });
    expect((await globex.list({ as: GLOBEX_AGENT })).json()).toEqual({ secrets: [] });
    // The same name elsewhere is another secret; putting it changes nothing here.
    expect((await globex.put("TENANT_SECRET", "globex-value", { as: GLOBEX_AGENT })).json().version).toBe(1);
    expect((await acme.get("TENANT_SECRET")).json().value).toBe("acme-researcher-value");
    expect((await globex.get("TENANT_SECRET", { as: GLOBEX_AGENT })).json().value).toBe("globex-value");
  });

  it("refuses bad input with the contract's error and stores nothing", async () => {
    const before = { secrets: await count("secrets"), versions: await count("secret_versions") };
    const bad: [Promise<import("./helpers.ts").Reply>, number, string][] = [
      [acme.put("HUGE", "x".repeat(VAULT.maxValueBytes + 1)), 413, "BadRequest"],
      [acme.put("MULTIBYTE", "€".repeat(Math.floor(VAULT.maxValueBytes / 3) + 1)), 413, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/HUGE_BODY", { rawBody: `{"value":"${"\\u0041".repeat(70_000)}"}` }), 413, "BadRequest"],
      [acme.put("bad name", "value-bad"), 400, "BadRequest"],
      [acme.put(".hidden", "value-bad"), 400, "BadRequest"],
      [acme.put("x".repeat(129), "value-bad"), 400, "BadRequest"],
      [acme.put("BAD_SCOPE", "value-bad", { scope: "not%20a%20role" }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/UNKNOWN_FIELD", { body: { value: "value-bad", ttl: 5 } }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/NO_VALUE", { body: {} }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/NOT_STRING", { body: { value: 42 } }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/NOT_OBJECT", { body: ["value-bad"] }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/MALFORMED", { rawBody: '{"value": "value-bad"' }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/LONE_SURROGATE", { rawBody: '{"value": "\\ud800"}' }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/BAD_UTF8", { rawBody: Buffer.from([0x7b, 0x22, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/TEXT", { rawBody: '{"value":"value-bad"}', headers: { "content-type": "text/plain" } }), 415, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/QUERY?scope=researcher&scope=writer", { body: { value: "value-bad" } }), 400, "BadRequest"],
      [acme.call("PUT", "/v1/secrets/QUERY?ttl=5", { body: { value: "value-bad" } }), 400, "BadRequest"],
      [acme.call("POST", "/v1/secrets/ANY", { body: { value: "value-bad" } }), 405, "BadRequest"],
      [acme.call("PATCH", "/v1/secrets/ANY", { body: { value: "value-bad" } }), 405, "BadRequest"],
      [acme.call("DELETE", "/v1/secrets"), 405, "BadRequest"],
      [acme.call("GET", "/v1/secrets/_batch"), 405, "BadRequest"],
      [acme.call("GET", "/v1/secrets/a/b"), 404, "BadRequest"],
      [acme.call("GET", "/v2/secrets"), 404, "BadRequest"],
      [acme.call("GET", "/v1/secrets/ANY?version=0"), 400, "BadRequest"],
      [acme.call("GET", "/v1/secrets/ANY?version=x"), 400, "BadRequest"],
      [acme.call("GET", "/v1/secrets/ANY", { rawBody: '{"value":"value-bad"}' }), 400, "BadRequest"],
      [acme.put("NO_IDENTITY", "value-bad", { as: null }), 401, "AuthenticationError"],
      [acme.put("NOT_AGENT", "value-bad", { as: "spiffe://hexr.local/sidecar/acme-corp/pod-1" }), 401, "AuthenticationError"],
      [acme.put("NO_SOURCE", "value-bad", { source: null }), 401, "AuthenticationError"],
      [acme.put("STATIC", "value-bad", { source: "static" }), 403, "CredentialError"],
      [acme.put("OTHER_TD", "value-bad", { as: "spiffe://other.example/agent/acme-corp/my-agent/researcher" }), 403, "CredentialError"],
    ];
    for (const [reply, status, type] of bad) {
      const settled = await reply;
      expectError(settled, status, type, ["value-bad"]);
    }
    expect({ secrets: await count("secrets"), versions: await count("secret_versions") }).toEqual(before);
    expect(vault.logs()).not.toMatch(/value-bad/);
  });

  it("keeps the newest 16 versions of a secret, pruning older ones as it writes", async () => {
    const as = agentId("acme-corp", "versions", "main");
    for (let i = 1; i <= 20; i++) expect((await acme.put("ROTATED", `v${i}`, { as })).json().version).toBe(i);
    const kept = await fixture.sql<{ version: number }>(store, "SELECT version FROM secret_versions WHERE agent = $1 ORDER BY version", ["versions"]);
    expect(kept.map((row) => Number(row.version))).toEqual(Array.from({ length: 16 }, (_, i) => i + 5));
    expectError(await acme.get("ROTATED", { as, version: 4 }), 404, "BadRequest");
    expect((await acme.get("ROTATED", { as, version: 5 })).json().value).toBe("v5");
  });
});
