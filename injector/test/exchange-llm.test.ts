// llm_* services: the provider API key read from the real Hexr Vault (vault/, SQLite) on the
// calling agent's behalf, with the real OPA deciding which models. The vault trusts the injector as
// a caller for every tenant (the stack's rule, stack/services.ts), and opens only the scope the
// agent's own JWT-SVID names: the agent's agent-level secret, for that agent, nowhere else.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEADERS, LLM } from "../../contract/index.ts";
import {
  DEFAULT_SIDECAR_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, INJECTOR_SPIFFE_ID, VAULT_SPIFFE_ID, ensureDevIdentity, issueX509Svid,
} from "../../support/dev-identity.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import { VAULT_INJECTOR_CALLER_RULE } from "../../stack/services.ts";
import { createLogger as createVaultLogger } from "../../vault/log.ts";
import { startVault, type RunningVault } from "../../vault/server.ts";
import { vaultClient, type TestIdentity as VaultTestIdentity, type VaultClient } from "../../vault/test/helpers.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  PIPELINE_ID, assertedHeaders, baseConfig, filterHeaders, send, sidecarTls, startBlackHole, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const agentId = (tenant: string, agent: string, role: string) => `spiffe://hexr.local/agent/${tenant}/${agent}/${role}`;
const CHAT = agentId("acme-corp", "chat-agent", "main");
const CHAT_WRITER = agentId("acme-corp", "chat-agent", "writer");
const CHAT_BATCH = agentId("acme-corp", "chat-agent", "batch");
/** Same tenant, another agent: its namespace holds no key. */
const OTHER_AGENT = agentId("acme-corp", "other-agent", "main");
/** Holds OPENAI_API_KEY only at role level (scope=main). */
const ROLE_KEYED = agentId("acme-corp", "role-keyed", "main");
/** The identity the sidecar's metadata listener asserts (static): it has an agent-level key too. */
const ASSERTED = agentId("acme-corp", "static-agent", "main");
const GLOBEX_CHAT = agentId("globex", "chat-agent", "main");
const GLOBEX_KEYLESS = agentId("globex", "keyless", "main");
const GLOBEX_SIDECAR = "spiffe://hexr.local/sidecar/globex/pod-1";

const OPENAI_KEY = "sk-acme-chat-0123456789abcdefOPENAI";
const ANTHROPIC_KEY = "sk-ant-acme-chat-0123456789abcdef";
const ROTATED_KEY = "sk-acme-chat-rotated-9876543210";
const ROLE_KEY = "sk-role-level-only-5555555555";
const ASSERTED_KEY = "sk-static-agent-4444444444";
const GLOBEX_KEY = "sk-globex-chat-7777777777";
const ALL_KEYS = [OPENAI_KEY, ANTHROPIC_KEY, ROTATED_KEY, ROLE_KEY, ASSERTED_KEY, GLOBEX_KEY];

const GRANTS = {
  hexr: {
    trust_domains: ["hexr.local"],
    tenants: {
      "acme-corp": {
        agents: {
          "chat-agent": { roles: { "*": ["llm_openai", "llm_anthropic"], batch: ["llm_openai:gpt-4o", "llm_openai:gpt-4o-mini"] } },
          "other-agent": { roles: { "*": ["llm_openai"] } },
          "role-keyed": { roles: { "*": ["llm_openai"] } },
          "static-agent": { roles: { "*": ["llm_openai"] } },
          "data-pipeline": { roles: { "*": ["aws_s3"] } },
        },
      },
      globex: { agents: { "chat-agent": { roles: { "*": ["llm_openai"] } }, keyless: { roles: { "*": ["llm_openai"] } } } },
    },
  },
};

let identity: TestIdentity;
let work: string;
let policyDir: string;
let opa: OpaServer;
let vault: RunningVault;
let vaultLogs = "";
let injector: CapturedInjector;
let tls: ClientTls;
let acmeSidecar: VaultClient;
let globexSidecar: VaultClient;

/** The vault as the stack configures it: the tenants' sidecars, and the injector for every tenant. */
async function vaultConfig(jwksFile = identity.paths.jwks, dbName = "vault.db"): Promise<Record<string, unknown>> {
  // URI SAN only, as SPIRE issues it: the vault is known by its SPIFFE ID, not a host name.
  const svid = await issueX509Svid(VAULT_SPIFFE_ID, identity.paths.dir);
  return {
    listen: { host: "127.0.0.1", port: 0 },
    tls: { cert_file: svid.cert, key_file: svid.key, client_ca_file: identity.paths.ca },
    trust_domains: ["hexr.local"],
    caller_rules: [
      { spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["acme-corp"] },
      { spiffe_id: "spiffe://hexr.local/sidecar/globex/*", tenants: ["globex"] },
      { ...VAULT_INJECTOR_CALLER_RULE, tenants: [...VAULT_INJECTOR_CALLER_RULE.tenants] },
    ],
    jwt: { jwks_file: jwksFile, audience: [DEV_AUDIENCE], issuer: DEV_ISSUER },
    admins: [],
    store: { engine: "sqlite", path: path.join(work, dbName) },
    kek: { active: "k1", keys: [{ id: "k1", file: path.join(work, "k1.key") }], generate_missing: true },
    log_level: "debug",
  };
}

/** The injector with an `llm` section pointed at `vaultUrl`; the dev sidecar relays every tenant and asserts ASSERTED. */
function injectorConfig(vaultUrl: string, llm: Record<string, unknown> = {}): InjectorConfigInput {
  return {
    ...baseConfig(identity, opa),
    caller_rules: [{ spiffe_id: DEFAULT_SIDECAR_SPIFFE_ID, tenants: ["*"], static_identities: [ASSERTED] }],
    llm: { vault_url: vaultUrl, vault_spiffe_id: VAULT_SPIFFE_ID, timeout_ms: 2000, ...llm },
  };
}

/** A sidecar client of the vault, putting secrets as an agent with the agent's own JWT-SVID. */
async function sidecarClient(vaultUrl: string, cert: string, key: string): Promise<VaultClient> {
  const tokens = { token: (spiffeId: string) => identity.mint(spiffeId) } as unknown as VaultTestIdentity;
  return vaultClient(vaultUrl, { ca: identity.paths.ca, cert, key }, tokens);
}

async function putAsAgent(client: VaultClient, agent: string, name: string, value: string, scope?: string): Promise<void> {
  const reply = await client.put(name, value, { as: agent, token: await identity.mint(agent), scope });
  expect(reply.status, reply.text).toBe(201);
}

async function exchange(spiffeId: string, service: string, url = injector.url, extra: Record<string, string> = {}) {
  const headers = filterHeaders(spiffeId, await identity.mint(spiffeId), extra);
  return send(url, { headers, body: JSON.stringify({ service }), tls });
}

const auditAfter = (seq: number) => vault.store.auditRecords(seq, 1000);
const auditHead = async () => (await vault.store.auditHead()).seq;

beforeAll(async () => {
  identity = await testIdentity();
  work = await mkdtemp(path.join(tmpdir(), "hexr-injector-llm-"));
  policyDir = path.join(work, "policy");
  await mkdir(policyDir);
  await copyFile(path.join(projectRoot, "policy", "exchange.rego"), path.join(policyDir, "exchange.rego"));
  await writeFile(path.join(policyDir, "data.json"), JSON.stringify(GRANTS));
  opa = await startOpa({ policyDir });
  vault = await startVault(await vaultConfig(), { logger: createVaultLogger("debug", { write: (line: string) => void (vaultLogs += line) }) });
  acmeSidecar = await sidecarClient(vault.url, identity.paths.sidecarCert, identity.paths.sidecarKey);
  const globexSvid = await issueX509Svid(GLOBEX_SIDECAR, identity.paths.dir);
  globexSidecar = await sidecarClient(vault.url, globexSvid.cert, globexSvid.key);
  // Each agent puts its own keys, at agent level (no scope), through its sidecar.
  await putAsAgent(acmeSidecar, CHAT, "OPENAI_API_KEY", OPENAI_KEY);
  await putAsAgent(acmeSidecar, CHAT, "ANTHROPIC_API_KEY", ANTHROPIC_KEY);
  await putAsAgent(acmeSidecar, ROLE_KEYED, "OPENAI_API_KEY", ROLE_KEY, "main");
  await putAsAgent(acmeSidecar, ASSERTED, "OPENAI_API_KEY", ASSERTED_KEY);
  await putAsAgent(globexSidecar, GLOBEX_CHAT, "OPENAI_API_KEY", GLOBEX_KEY);
  injector = await startCaptured(injectorConfig(vault.url));
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  acmeSidecar?.close();
  globexSidecar?.close();
  await injector?.close();
  await vault?.close();
  await opa?.stop();
  await identity?.remove();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("an llm_* key from the vault, in the agent's own scope", () => {
  it("answers the key the agent put at agent level, as the contract's 200 body with every model", async () => {
    const before = Math.floor(Date.now() / 1000);
    const reply = await exchange(CHAT, "llm_openai");
    expect(reply.status, reply.body).toBe(200);
    expect(reply.json).toEqual({
      service: "llm_openai", provider: "llm", region: "global", spiffe_id: CHAT,
      credentials: { [LLM.keyCredentials.apiKey]: OPENAI_KEY, [LLM.keyCredentials.models]: "" },
      expiration: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      expires_at: expect.any(Number),
    });
    // key_ttl_seconds, default 1500: how long a key rotated in the vault may still be handed out.
    expect(reply.json.expires_at).toBeGreaterThanOrEqual(before + 1500);
    expect(reply.json.expires_at).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1500);
    expect(reply.headers[HEADERS.expires_at]).toBe(String(reply.json.expires_at));
    expect(reply.headers["cache-control"]).toBe("no-store");
    expect(injector.logLines().filter((line) => line.msg === "exchange").at(-1)).toMatchObject({
      spiffe_id: CHAT, service: "llm_openai", provider: "llm", region: "global", decision: "allow", outcome: "issued", status: 200, scopes: [],
    });
  });

  it("serves every role of the agent its agent-level key, and each provider its own secret", async () => {
    expect((await exchange(CHAT_WRITER, "llm_openai")).json.credentials.api_key).toBe(OPENAI_KEY);
    const anthropic = await exchange(CHAT, "llm_anthropic");
    expect(anthropic.status).toBe(200);
    expect(anthropic.json).toMatchObject({ service: "llm_anthropic", credentials: { api_key: ANTHROPIC_KEY, models: "" } });
  });

  it("answers the granted models as OPA's scopes, space-separated", async () => {
    const reply = await exchange(CHAT_BATCH, "llm_openai");
    expect(reply.status).toBe(200);
    expect(reply.json.credentials).toEqual({ api_key: OPENAI_KEY, models: "gpt-4o gpt-4o-mini" });
    expect(injector.logLines().filter((line) => line.msg === "exchange").at(-1)).toMatchObject({ scopes: ["gpt-4o", "gpt-4o-mini"] });
  });

  it("refuses another agent of the same tenant (403): its scope holds no key, and the secret is named, never a value", async () => {
    const reply = await exchange(OTHER_AGENT, "llm_openai");
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "the secret OPENAI_API_KEY is not in the vault for this identity" } });
    expect(injector.logLines().filter((line) => line.msg === "exchange").at(-1)).toMatchObject({ decision: "allow", outcome: "key_missing", status: 403 });
  });

  it("keeps tenants apart: globex's agent gets its own key, a globex agent without one gets 403, never acme-corp's", async () => {
    const own = await exchange(GLOBEX_CHAT, "llm_openai");
    expect(own.status).toBe(200);
    expect(own.json.credentials.api_key).toBe(GLOBEX_KEY);
    const keyless = await exchange(GLOBEX_KEYLESS, "llm_openai");
    expect(keyless.status).toBe(403);
    expect(keyless.json.error.message).toBe("the secret OPENAI_API_KEY is not in the vault for this identity");
    for (const reply of [own, keyless]) expect(reply.body).not.toContain(OPENAI_KEY);
  });

  it("does not count a role-level secret of that name: it is one role's, not the identity's agent-level key (403)", async () => {
    const reply = await exchange(ROLE_KEYED, "llm_openai");
    expect(reply.status).toBe(403);
    expect(reply.json.error.message).toBe("the secret OPENAI_API_KEY is not in the vault for this identity");
    expect(reply.body).not.toContain(ROLE_KEY);
  });

  it("reads as the agent: the vault's audit log names the agent as the reader and the injector as the caller", async () => {
    const seq = await auditHead();
    expect((await exchange(CHAT, "llm_openai")).status).toBe(200);
    const records = await auditAfter(seq);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ spiffe_id: CHAT, caller: INJECTOR_SPIFFE_ID, operation: "get", name: "OPENAI_API_KEY", scope: "*", status: 200 });
    expect(JSON.stringify(records)).not.toContain(OPENAI_KEY);
  });

  it("forwards the agent's JWT-SVID, which the vault verifies itself: a vault that does not trust its keys refuses (503)", async () => {
    // Another dev identity's JWKS: the vault cannot verify the agent's token, though the injector did.
    const strangerDir = path.join(work, "stranger-identity");
    const stranger = await ensureDevIdentity(strangerDir);
    const distrusting = await startVault(await vaultConfig(stranger.jwks, "distrusting.db"), { logger: createVaultLogger("silent") });
    const own = await startCaptured(injectorConfig(distrusting.url));
    try {
      const reply = await send(own.url, { headers: filterHeaders(CHAT, await identity.mint(CHAT)), body: JSON.stringify({ service: "llm_openai" }), tls });
      expect(reply.status).toBe(503);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Hexr Vault could not serve the key: it answered HTTP 401" } });
      // Refused before an identity was established: the vault records its caller, the injector.
      const [record] = await distrusting.store.auditRecords(0, 10);
      expect(record).toMatchObject({ spiffe_id: INJECTOR_SPIFFE_ID, caller: INJECTOR_SPIFFE_ID, operation: "get", status: 401 });
    } finally {
      await own.close();
      await distrusting.close();
    }
  });

  it("passes on how the agent reached its sidecar: mtls with a JWT-SVID is served too", async () => {
    const reply = await exchange(CHAT, "llm_openai", injector.url, { [HEADERS.identity_source]: "mtls" });
    expect(reply.status).toBe(200);
    expect(reply.json.credentials.api_key).toBe(OPENAI_KEY);
  });

  it("refuses a static identity (403): the vault serves secrets only to an agent that proved itself", async () => {
    const seq = await auditHead();
    const reply = await send(injector.url, { headers: assertedHeaders(ASSERTED), body: JSON.stringify({ service: "llm_openai" }), tls });
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Hexr Vault refused to read OPENAI_API_KEY for this identity" } });
    expect(reply.body).not.toContain(ASSERTED_KEY);
    expect(await auditAfter(seq)).toMatchObject([{ caller: INJECTOR_SPIFFE_ID, operation: "get", name: "OPENAI_API_KEY", status: 403 }]);
    expect(injector.logLines().filter((line) => line.msg === "exchange").at(-1)).toMatchObject({ identity_source: "static", outcome: "denied", status: 403 });
  });

  it("asks OPA first: a service not granted is 403 and the vault is never asked", async () => {
    const seq = await auditHead();
    const reply = await exchange(PIPELINE_ID, "llm_openai");
    expect(reply.status).toBe(403);
    expect(reply.json.error.message).toBe("policy denied: llm_openai is not granted to acme-corp/data-pipeline/main");
    expect(await auditAfter(seq)).toEqual([]);
  });

  it("reads the vault on every exchange: a rotated key is answered at once (the sidecars' copies last key_ttl_seconds)", async () => {
    await putAsAgent(acmeSidecar, CHAT, "ANTHROPIC_API_KEY", ROTATED_KEY);
    expect((await exchange(CHAT, "llm_anthropic")).json.credentials.api_key).toBe(ROTATED_KEY);
  });
});

describe("when the vault cannot answer", () => {
  it("is 503 when the vault is unreachable", async () => {
    const own = await startCaptured(injectorConfig(`https://127.0.0.1:${await freePort()}`));
    try {
      const reply = await exchange(CHAT, "llm_openai", own.url);
      expect(reply.status).toBe(503);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Hexr Vault could not serve the key: it is unreachable" } });
      expect(own.logLines().find((line) => line.msg === "exchange")).toMatchObject({ outcome: "exchange_unavailable", status: 503, level: 40 });
    } finally {
      await own.close();
    }
  });

  it("is 504 when the vault does not answer within llm.timeout_ms", async () => {
    const hung = await startBlackHole();
    const own = await startCaptured(injectorConfig(hung.url.replace("http://", "https://"), { timeout_ms: 300 }));
    try {
      const started = Date.now();
      const reply = await exchange(CHAT, "llm_openai", own.url);
      expect(reply.status).toBe(504);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Hexr Vault did not answer within 300 ms" } });
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await own.close();
      await hung.close();
    }
  });

  it("refuses a server that is not the vault (its certificate's SPIFFE ID), as unreachable", async () => {
    const own = await startCaptured(injectorConfig(vault.url, { vault_spiffe_id: "spiffe://hexr.local/hexr-system/impostor" }));
    try {
      const seq = await auditHead();
      const reply = await exchange(CHAT, "llm_openai", own.url);
      expect(reply.status).toBe(503);
      expect(reply.body).not.toContain(OPENAI_KEY);
      // The TLS handshake completed on the vault's side, but no request was sent over it.
      expect(await auditAfter(seq)).toEqual([]);
    } finally {
      await own.close();
    }
  });

  it("is 503 for llm_* on an injector without an llm section", async () => {
    const own = await startCaptured({ ...baseConfig(identity, opa) });
    try {
      const reply = await exchange(CHAT, "llm_openai", own.url);
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("llm exchanges are not configured on this injector");
    } finally {
      await own.close();
    }
  });
});

describe("no key anywhere but in the 200 body", () => {
  it("never writes a key to the injector's log or the vault's", () => {
    const logs = injector.logText();
    expect(logs).toContain('"service":"llm_openai"');
    for (const key of ALL_KEYS) {
      expect(logs).not.toContain(key);
      expect(vaultLogs).not.toContain(key);
    }
  });
});
