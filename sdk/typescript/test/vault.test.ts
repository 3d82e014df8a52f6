// VaultClient and secretsBatch against a loopback stand-in for the sidecar and the vault
// (test/fake-vault.ts, strict to docs/vault-api.md): every operation and its exact request, scopes
// and namespaces, batches all or nothing, every error mapping, client-side validation with no
// request sent, secretsBatch, and no value in any inspect/JSON, error, console line or span.
import { inspect } from "node:util";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  AccessDeniedError, AuthenticationError, CredentialError, FileJwtSvidSource, HexrClient, HexrError, NoJwtSvidSource, SecretNotFoundError,
  VaultClient, currentAgent, hexrAgent, isSecretName, secretsBatch,
} from "../src/index.ts";
import { isSecretName as projectIsSecretName } from "../../../contract/index.ts";
import { startFakeVault, type FakeVault } from "./fake-vault.ts";
import { fixedIdentity, tempDir, unsignedJwt } from "./helpers.ts";

const RESEARCHER = "spiffe://hexr.local/agent/acme-corp/my-agent/researcher";
const WRITER = "spiffe://hexr.local/agent/acme-corp/my-agent/writer";
const MAIN = "spiffe://hexr.local/agent/acme-corp/my-agent/main";
const OTHER_AGENT = "spiffe://hexr.local/agent/acme-corp/other-agent/researcher";
const OTHER_TENANT = "spiffe://hexr.local/agent/globex/my-agent/researcher";
/** A value that must never be seen anywhere but in what get() returns. */
const VALUE = "sk-proj-Zq8vX3-never-log-me-7Hk2";

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
let fake: FakeVault;
let token = unsignedJwt(RESEARCHER);
let vault: VaultClient;
const as = (spiffeId: string) => (token = unsignedJwt(spiffeId));

beforeAll(async () => {
  fake = await startFakeVault();
  trace.setGlobalTracerProvider(tracerProvider);
});
afterAll(async () => {
  trace.disable();
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  as(RESEARCHER);
  vault = new VaultClient({ sidecarUrl: fake.url, identity: fixedIdentity(() => token) });
  spans.reset();
});
afterEach(() => {
  vault.close();
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

const lines = () => fake.requests.map((r) => `${r.method} ${r.path}`);

async function rejection(promise: Promise<unknown>): Promise<HexrError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HexrError);
    return error as HexrError;
  }
  throw new Error("it did not reject");
}

describe("every operation, and exactly what it sends", () => {
  it("put, get (latest and by version), list, delete", async () => {
    expect(await vault.put("OPENAI_API_KEY", "sk-one")).toBe(1);
    expect(await vault.put("OPENAI_API_KEY", "sk-two")).toBe(2);
    expect(await vault.put("SLACK_WEBHOOK", "https://hooks.slack.com/x")).toBe(1);
    expect(await vault.get("OPENAI_API_KEY")).toBe("sk-two");
    expect(await vault.get("OPENAI_API_KEY", { version: 1 })).toBe("sk-one");
    expect(await vault.list()).toEqual(["OPENAI_API_KEY", "SLACK_WEBHOOK"]);
    expect(await vault.delete("OPENAI_API_KEY")).toBeUndefined();
    expect(await vault.list()).toEqual(["SLACK_WEBHOOK"]);
    await expect(vault.get("OPENAI_API_KEY")).rejects.toBeInstanceOf(SecretNotFoundError);

    expect(lines()).toEqual([
      "PUT /v1/secrets/OPENAI_API_KEY",
      "PUT /v1/secrets/OPENAI_API_KEY",
      "PUT /v1/secrets/SLACK_WEBHOOK",
      "GET /v1/secrets/OPENAI_API_KEY",
      "GET /v1/secrets/OPENAI_API_KEY?version=1",
      "GET /v1/secrets",
      "DELETE /v1/secrets/OPENAI_API_KEY",
      "GET /v1/secrets",
      "GET /v1/secrets/OPENAI_API_KEY",
    ]);
    for (const r of fake.requests) {
      expect(r.authorization).toBe(`Bearer ${token}`);
      expect(r.hexrHeaders).toEqual([]);
      if (r.method === "PUT") expect(r.contentType).toBe("application/json");
      else expect([r.contentType, r.body]).toEqual([undefined, undefined]);
    }
    expect(fake.requests.slice(0, 3).map((r) => r.body)).toEqual([{ value: "sk-one" }, { value: "sk-two" }, { value: "https://hooks.slack.com/x" }]);
    expect(fake.requests.map((r) => r.status)).toEqual([201, 201, 201, 200, 200, 200, 204, 200, 404]);
  });

  it("round-trips values exactly, up to the limit", async () => {
    const cases: Record<string, string> = {
      EMPTY: "",
      UNICODE: 'clé-秘密-🔑 "quoted" \\ back\nslash\t\u0000\u007f',
      MAX_ASCII: "a".repeat(65536),
      MAX_MULTIBYTE: "€".repeat(21845) + "a",
      MAX_CONTROL: "\u0001".repeat(65536),
      ["N".repeat(128)]: "longest name",
    };
    for (const [name, value] of Object.entries(cases)) expect(await vault.put(name, value)).toBe(1);
    expect({ ...(await vault.getMany(Object.keys(cases))) }).toEqual(cases);
    for (const [name, value] of Object.entries(cases)) expect(await vault.get(name)).toBe(value);
  });

  it("uses a given HexrClient's sidecar and identity", async () => {
    const client = new HexrClient({ sidecarUrl: fake.url, identity: fixedIdentity(() => token) });
    const viaClient = new VaultClient({ client });
    expect(await viaClient.list()).toEqual([]);
    expect(viaClient.sidecarUrl).toBe(`${fake.url}/`);
    client.close();
  });
});

describe("scopes and namespaces", () => {
  it("keeps a role-level secret to its role; a writer is denied the researcher's secret", async () => {
    expect(await vault.put("SHARED_KEY", "shared")).toBe(1);
    expect(await vault.put("RESEARCH_DB_KEY", "db", { scope: "researcher" })).toBe(1);
    expect(fake.requests.at(-1)!.path).toBe("/v1/secrets/RESEARCH_DB_KEY?scope=researcher");
    expect(fake.secret(RESEARCHER, "RESEARCH_DB_KEY")!.scope).toBe("researcher");
    expect(fake.secret(RESEARCHER, "SHARED_KEY")!.scope).toBe("*");
    expect(await vault.list()).toEqual(["RESEARCH_DB_KEY", "SHARED_KEY"]);

    as(WRITER);
    const denied = await rejection(vault.get("RESEARCH_DB_KEY"));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(denied).toBeInstanceOf(CredentialError);
    expect([denied.status, denied.type, denied.name]).toEqual([403, "CredentialError", "AccessDeniedError"]);
    await expect(vault.put("RESEARCH_DB_KEY", "x", { scope: "researcher" })).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(vault.delete("RESEARCH_DB_KEY")).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(vault.put("WRITER_MADE", "x", { scope: "researcher" })).rejects.toBeInstanceOf(AccessDeniedError);
    expect(await vault.get("SHARED_KEY")).toBe("shared");
    expect(await vault.list()).toEqual(["SHARED_KEY"]);

    const conflict = await rejection(vault.put("SHARED_KEY", "x", { scope: "writer" }));
    expect([conflict.status, conflict.type, conflict.constructor]).toEqual([409, "BadRequest", HexrError]);
    as(RESEARCHER);
    const again = await rejection(vault.put("RESEARCH_DB_KEY", "x"));
    expect([again.status, again.message]).toEqual([409, "the secret RESEARCH_DB_KEY has another scope"]); // "x" is no reason to drop it
    expect(await vault.get("RESEARCH_DB_KEY")).toBe("db");
  });

  it("another agent or tenant has its own namespace", async () => {
    await vault.put("OPENAI_API_KEY", "mine");
    for (const other of [OTHER_AGENT, OTHER_TENANT]) {
      as(other);
      await expect(vault.get("OPENAI_API_KEY")).rejects.toBeInstanceOf(SecretNotFoundError);
      expect(await vault.list()).toEqual([]);
      expect(await vault.put("OPENAI_API_KEY", "theirs")).toBe(1);
    }
    as(RESEARCHER);
    expect(await vault.get("OPENAI_API_KEY")).toBe("mine");
  });
});

describe("getMany", () => {
  it("is one round trip, in the order given, duplicates dropped", async () => {
    fake.seed(RESEARCHER, "B_KEY", "b");
    fake.seed(RESEARCHER, "A_KEY", "a1");
    fake.seed(RESEARCHER, "A_KEY", "a2");
    fake.seed(RESEARCHER, "OWN", "own", "researcher");
    const got = await vault.getMany(["OWN", "B_KEY", "A_KEY", "B_KEY"]);
    expect({ ...got }).toEqual({ OWN: "own", B_KEY: "b", A_KEY: "a2" });
    expect(Object.keys(got)).toEqual(["OWN", "B_KEY", "A_KEY"]);
    const typed: string = got.OWN; // Secrets<"OWN" | "B_KEY" | "A_KEY">
    expect(typed).toBe("own");
    expect(lines()).toEqual(["POST /v1/secrets/_batch"]);
    expect(fake.requests[0].body).toEqual({ names: ["OWN", "B_KEY", "A_KEY"] });
    expect(fake.requests[0].contentType).toBe("application/json");
  });

  it("is all or nothing, naming the failing secret", async () => {
    fake.seed(RESEARCHER, "SHARED", "s");
    fake.seed(RESEARCHER, "WRITER_ONLY", "w", "writer");
    const missing = await rejection(vault.getMany(["SHARED", "NOPE"]));
    expect(missing).toBeInstanceOf(SecretNotFoundError);
    expect([missing.status, missing.message]).toEqual([404, "no such secret: NOPE"]);
    const denied = await rejection(vault.getMany(["SHARED", "WRITER_ONLY"]));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(denied.message).toContain("WRITER_ONLY");
  });

  it("sixty-four names make one batch; an answer that is not exactly the batch is a 502", async () => {
    for (let i = 0; i < 64; i++) fake.seed(RESEARCHER, `N${i}`, `v${i}`);
    const names = Array.from({ length: 200 }, (_, i) => `N${i % 64}`);
    expect(Object.keys(await vault.getMany(names))).toHaveLength(64);
    for (const body of [{ secrets: { A: { value: "a" } } }, { secrets: { A: { value: "a" }, B: { value: "b" }, C: { value: "c" } } }, { secrets: { A: { value: "a" }, B: { value: 1 } } }, { secrets: [] }, []]) {
      fake.nextAnswer = { status: 200, body: JSON.stringify(body) };
      const error = await rejection(vault.getMany(["A", "B"]));
      expect([error.constructor, error.status]).toEqual([CredentialError, 502]);
    }
  });
});

describe("error mapping", () => {
  const table: [number, string, Function][] = [
    [400, "BadRequest", HexrError],
    [401, "AuthenticationError", AuthenticationError],
    [403, "CredentialError", AccessDeniedError],
    [404, "BadRequest", SecretNotFoundError],
    [405, "BadRequest", HexrError],
    [409, "BadRequest", HexrError],
    [413, "BadRequest", HexrError],
    [415, "BadRequest", HexrError],
    [429, "CredentialError", CredentialError],
    [502, "CredentialError", CredentialError],
    [503, "CredentialError", CredentialError],
    [504, "CredentialError", CredentialError],
  ];
  for (const [status, type, cls] of table) {
    it(`${status} → ${cls.name} (${type}), with the contract's body or without`, async () => {
      const operations = [() => vault.get("A"), () => vault.put("A", "value-1"), () => vault.delete("A"), () => vault.list(), () => vault.getMany(["A"])];
      for (const contractBody of [true, false]) {
        for (const operation of operations) {
          fake.nextAnswer = contractBody
            ? { status, body: JSON.stringify({ error: { type, message: "the vault's message" } }) }
            : { status, body: "<html>oops</html>", headers: { "content-type": "text/html" } };
          const error = await rejection(operation());
          expect(error.constructor).toBe(cls);
          expect([error.status, error.type]).toEqual([status, type]);
          expect(error instanceof CredentialError).toBe([403, 429, 502, 503, 504].includes(status));
          if (contractBody) expect(error.message).toBe("the vault's message");
          else expect(String(error)).not.toContain("html");
        }
      }
    });
  }

  it("the fake's own: storage unavailable (503), a revoked identity (403)", async () => {
    fake.unavailable = true;
    const unavailable = await rejection(vault.list());
    expect([unavailable.constructor, unavailable.status]).toEqual([CredentialError, 503]);
    fake.unavailable = false;
    fake.revoked.add(RESEARCHER);
    await expect(vault.get("ANY")).rejects.toBeInstanceOf(AccessDeniedError);
  });

  it("no identity, or an expired one, rejects before any request", async () => {
    const none = new VaultClient({ sidecarUrl: fake.url, identity: new NoJwtSvidSource() });
    await expect(none.get("ANY")).rejects.toBeInstanceOf(AuthenticationError);
    const dir = tempDir("vault");
    const file = path.join(dir, "expired.jwt");
    writeFileSync(file, unsignedJwt(RESEARCHER, -10));
    const expired = new VaultClient({ sidecarUrl: fake.url, identity: new FileJwtSvidSource(file) });
    await expect(expired.put("ANY", VALUE)).rejects.toBeInstanceOf(AuthenticationError);
    expect(fake.requests).toEqual([]);
    none.close();
    expired.close();
  });

  it("an unreachable sidecar is a CredentialError 503", async () => {
    const nowhere = new VaultClient({ sidecarUrl: "http://127.0.0.1:9", identity: fixedIdentity(() => token), timeoutMs: 2000 });
    const error = await rejection(nowhere.getMany(["A"]));
    expect([error.constructor, error.status]).toEqual([CredentialError, 503]);
    nowhere.close();
  });

  it("malformed answers are 502s", async () => {
    const cases: [() => Promise<unknown>, number, unknown][] = [
      [() => vault.put("A", "v"), 200, { name: "A", scope: "*", version: 1 }],
      [() => vault.put("A", "v"), 201, { name: "B", scope: "*", version: 1 }],
      [() => vault.put("A", "v"), 201, { name: "A", scope: "*", version: 0 }],
      [() => vault.get("A"), 200, { name: "B", value: "v", version: 1 }],
      [() => vault.get("A"), 200, { name: "A", value: 5, version: 1 }],
      [() => vault.get("A", { version: 2 }), 200, { name: "A", value: "v", version: 3 }],
      [() => vault.list(), 200, { secrets: [{ name: "../x" }] }],
      [() => vault.list(), 200, { names: [] }],
      [() => vault.delete("A"), 200, {}],
    ];
    for (const [operation, status, body] of cases) {
      fake.nextAnswer = { status, body: JSON.stringify(body) };
      expect((await rejection(operation())).status).toBe(502);
    }
    fake.nextAnswer = { status: 200, body: `{not json ${VALUE}` };
    const error = await rejection(vault.get("A"));
    expect(inspect(error) + JSON.stringify(error) + String((error as { cause?: unknown }).cause)).not.toContain(VALUE);
  });
});

describe("client-side validation: BadRequest, nothing sent", () => {
  const badNames: unknown[] = ["", "_batch", "-x", ".env", "a/b", "a b", "x".repeat(129), "é", "a%2Fb", "a?b", 5, null, undefined];
  const badScopes: unknown[] = ["*", "", ".", "..", "a/b", "re searcher", "x".repeat(129), "é", 3, null];
  const badVersions: unknown[] = [0, -1, 1.5, "1", Number.NaN, 2 ** 53, null];

  it("bad names, for every operation", async () => {
    for (const name of badNames) {
      for (const operation of [() => vault.get(name as string), () => vault.put(name as string, VALUE), () => vault.delete(name as string), () => vault.getMany([name as string]), () => vault.getMany(["OK", name as string])]) {
        const error = await rejection(operation());
        expect([error.type, error.status, error.constructor]).toEqual(["BadRequest", 400, HexrError]);
        expect(error.message).toMatch(/secret name/);
      }
    }
    const echoed = await rejection(vault.get(`sk/${VALUE}`));
    expect(inspect(echoed) + JSON.stringify(echoed)).not.toContain(VALUE);
    expect(fake.requests).toEqual([]);
  });

  it("bad scopes, versions, values and batches", async () => {
    for (const scope of badScopes) expect((await rejection(vault.put("NAME", VALUE, { scope: scope as string }))).message).toMatch(/scope must be a role name/);
    for (const version of badVersions) expect((await rejection(vault.get("NAME", { version: version as number }))).message).toMatch(/version must be a positive integer/);
    const tooBig = await rejection(vault.put("NAME", "€".repeat(21846)));
    expect([tooBig.status, tooBig.message]).toEqual([413, "a secret value is at most 65536 bytes of UTF-8 (this one is 65538)"]);
    expect((await rejection(vault.put("NAME", "a".repeat(65537)))).status).toBe(413);
    expect((await rejection(vault.put("NAME", `${VALUE}\ud800`))).message).toMatch(/lone surrogate/);
    for (const value of [null, 5, Buffer.from("x"), ["x"]]) expect((await rejection(vault.put("NAME", value as unknown as string))).message).toMatch(/must be a string/);
    for (const names of ["OPENAI_API_KEY", null, 5, [], Array.from({ length: 65 }, (_, i) => `N${i}`)]) {
      expect((await rejection(vault.getMany(names as string[]))).type).toBe("BadRequest");
    }
    expect(fake.requests).toEqual([]);
  });

  it("the name grammar is the project's (contract/index.ts isSecretName)", () => {
    const samples = ["A", "_batch", "a.b-c_d", "x".repeat(128), "x".repeat(129), "", ".a", "a/b", "é", "9lives", "a:b", "a*"];
    for (const s of samples) expect(isSecretName(s)).toBe(projectIsSecretName(s));
  });
});

describe("secretsBatch", () => {
  it("passes the secrets as the first argument, fetched in one round trip, inside hexrAgent", async () => {
    as(MAIN);
    fake.seed(MAIN, "OPENAI_API_KEY", "sk-openai-123456");
    fake.seed(MAIN, "ANTHROPIC_API_KEY", "sk-ant-654321");
    const seen: unknown[] = [];
    const contextDir = tempDir("vault-context");
    vi.stubEnv("HEXR_CONTEXT_DIR", contextDir);
    const main = hexrAgent(
      { name: "my-agent", tenant: "acme-corp" },
      secretsBatch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], async ({ OPENAI_API_KEY, ANTHROPIC_API_KEY }, topic: string, n: number) => {
        seen.push(OPENAI_API_KEY, ANTHROPIC_API_KEY, topic, n, currentAgent()?.name);
        return "done";
      }, { vault }),
    );
    expect(await main("status report", 3)).toBe("done");
    expect(existsSync(path.join(contextDir, "my-agent-main.json"))).toBe(true);
    expect(seen).toEqual(["sk-openai-123456", "sk-ant-654321", "status report", 3, "my-agent"]);
    expect(lines()).toEqual(["POST /v1/secrets/_batch"]);
    expect(fake.requests[0].body).toEqual({ names: ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] });
  });

  it("a missing or denied secret rejects and the function is not called", async () => {
    as(WRITER);
    fake.seed(WRITER, "PRESENT", "p");
    fake.seed(WRITER, "RESEARCH_DB_KEY", "r", "researcher");
    const fn = vi.fn(async () => "called");
    await expect(secretsBatch(["PRESENT", "ABSENT"], fn, { vault })()).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(secretsBatch(["PRESENT", "RESEARCH_DB_KEY"], fn, { vault })()).rejects.toBeInstanceOf(AccessDeniedError);
    expect(fn).not.toHaveBeenCalled();
    expect(await secretsBatch(["PRESENT"], fn, { vault })()).toBe("called");
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("checks the names when wrapping, and works with a sync function and the default VaultClient", async () => {
    expect(() => secretsBatch(["bad/name"], () => 1)).toThrow(/secret name/);
    expect(() => secretsBatch([], () => 1)).toThrow(/1 to 64/);
    expect(() => secretsBatch("OPENAI_API_KEY" as unknown as string[], () => 1)).toThrow(/not a string/);
    expect(fake.requests).toEqual([]);
    fake.seed(RESEARCHER, "db.password", "pw");
    const previous = { url: process.env.HEXR_SIDECAR_URL };
    const { configure } = await import("../src/client.ts");
    configure({ sidecarUrl: fake.url, identity: fixedIdentity(() => token) });
    try {
      const connect = secretsBatch(["db.password"], (secrets) => secrets["db.password"].length);
      expect(await connect()).toBe(2);
    } finally {
      configure({ sidecarUrl: previous.url ?? "http://127.0.0.1:15080" });
    }
  });
});

describe("never a value in an inspect, a JSON, an error, a console line or a span", () => {
  it("anywhere, whatever happens", async () => {
    const printed: string[] = [];
    for (const method of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void printed.push(args.map((a) => inspect(a, { depth: 10 })).join(" ")));
    }
    const errors: HexrError[] = [];
    const fails = async (p: Promise<unknown>) => void errors.push(await rejection(p));

    expect(await vault.put("OPENAI_API_KEY", VALUE)).toBe(1);
    expect(await vault.put("RESEARCH_ONLY", VALUE, { scope: "researcher" })).toBe(1);
    expect(await vault.get("OPENAI_API_KEY")).toBe(VALUE);
    expect(await vault.get("OPENAI_API_KEY", { version: 1 })).toBe(VALUE);
    const many = await vault.getMany(["OPENAI_API_KEY", "RESEARCH_ONLY"]);
    expect(many.OPENAI_API_KEY).toBe(VALUE);
    // What a careless log line of the record shows: its names only.
    console.log("secrets:", many);
    console.log(JSON.stringify(many), JSON.stringify({ many }), String(vault), JSON.stringify(vault), vault);
    expect(await vault.list()).toEqual(["OPENAI_API_KEY", "RESEARCH_ONLY"]);
    expect(await secretsBatch(["OPENAI_API_KEY"], (s) => (console.log("got", s), s.OPENAI_API_KEY.length), { vault })()).toBe(VALUE.length);

    await fails(vault.put("OPENAI_API_KEY", VALUE, { scope: "researcher" })); // 409
    await fails(vault.put("NAME", VALUE + "x".repeat(65536))); // too big, local
    await fails(vault.put(`sk/${VALUE}`, VALUE)); // a value where the name goes, local
    await fails(vault.put("NAME", `${VALUE}\udc00`)); // not Unicode, local
    fake.nextAnswer = { status: 400, body: JSON.stringify({ error: { type: "BadRequest", message: `bad value ${VALUE}` } }) };
    await fails(vault.put("NAME", VALUE)); // a vault that (wrongly) echoes the value put
    fake.nextAnswer = { status: 200, body: `{oops ${VALUE}` };
    await fails(vault.get("OPENAI_API_KEY"));
    as(WRITER);
    await fails(vault.get("RESEARCH_ONLY"));
    await fails(vault.getMany(["OPENAI_API_KEY", "RESEARCH_ONLY"]));
    await fails(secretsBatch(["RESEARCH_ONLY"], () => 1, { vault })());
    fake.unavailable = true;
    await fails(vault.get("OPENAI_API_KEY"));

    expect(errors).toHaveLength(10);
    for (const error of errors) {
      const shown = [error.message, String(error), JSON.stringify(error), inspect(error), inspect({ error }, { depth: 10 }), error.stack ?? "", String((error as { cause?: unknown }).cause)].join("\n");
      expect(shown.includes(VALUE), inspect(error)).toBe(false);
    }
    expect(printed.join("\n")).not.toContain(VALUE);
    expect(printed.join("\n")).toContain("OPENAI_API_KEY: '[secret]'");
    expect(inspect(vault)).toBe(`VaultClient(${fake.url}/)`);

    const done = spans.getFinishedSpans().filter((s) => s.name.startsWith("hexr.vault."));
    expect(done.length).toBeGreaterThanOrEqual(17);
    const allowed = new Set(["hexr.vault.operation", "hexr.vault.name", "hexr.vault.names", "hexr.vault.scope", "hexr.vault.version", "hexr.vault.outcome", "hexr.vault.status", "error.type", "http.status_code"]);
    for (const span of done) {
      expect(JSON.stringify({ name: span.name, a: span.attributes, e: span.events, s: span.status, l: span.links })).not.toContain(VALUE);
      for (const key of Object.keys(span.attributes)) expect(allowed.has(key), key).toBe(true);
      expect(span.events).toEqual([]);
    }
  });

  it("spans carry the operation, name(s), scope, version and outcome", async () => {
    await vault.put("K", "v", { scope: "researcher" });
    await vault.get("K");
    await vault.list();
    await vault.getMany(["K"]);
    await vault.delete("K");
    await rejection(vault.get("K"));
    await rejection(vault.get("bad/name"));
    expect(spans.getFinishedSpans().map((s) => [s.name, s.attributes])).toEqual([
      ["hexr.vault.put", { "hexr.vault.operation": "put", "hexr.vault.name": "K", "hexr.vault.scope": "researcher", "hexr.vault.status": 201, "hexr.vault.version": 1, "hexr.vault.outcome": "ok" }],
      ["hexr.vault.get", { "hexr.vault.operation": "get", "hexr.vault.name": "K", "hexr.vault.status": 200, "hexr.vault.version": 1, "hexr.vault.scope": "researcher", "hexr.vault.outcome": "ok" }],
      ["hexr.vault.list", { "hexr.vault.operation": "list", "hexr.vault.status": 200, "hexr.vault.outcome": "ok" }],
      ["hexr.vault.get_many", { "hexr.vault.operation": "get_many", "hexr.vault.names": ["K"], "hexr.vault.status": 200, "hexr.vault.outcome": "ok" }],
      ["hexr.vault.delete", { "hexr.vault.operation": "delete", "hexr.vault.name": "K", "hexr.vault.status": 204, "hexr.vault.outcome": "ok" }],
      ["hexr.vault.get", { "hexr.vault.operation": "get", "hexr.vault.name": "K", "hexr.vault.status": 404, "hexr.vault.outcome": "not_found", "error.type": "BadRequest", "http.status_code": 404 }],
      ["hexr.vault.get", { "hexr.vault.operation": "get", "hexr.vault.outcome": "invalid", "error.type": "BadRequest", "http.status_code": 400 }],
    ]);
    for (const s of spans.getFinishedSpans().slice(-2)) expect([s.status.code, s.status.message]).toEqual([2, "BadRequest"]);
  });
});

describe("the fake is as strict as the document", () => {
  async function raw(method: string, target: string, headers: Record<string, string> = {}, body?: string) {
    const response = await fetch(fake.url + target, { method, headers, body });
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  it("refuses what the document refuses", async () => {
    const auth = { authorization: `Bearer ${unsignedJwt(RESEARCHER)}` };
    const jsonAuth = { ...auth, "content-type": "application/json" };
    const cases: [string, string, Record<string, string>, string | undefined, number][] = [
      ["GET", "/v1/secrets", {}, undefined, 401],
      ["GET", "/v1/secrets", { authorization: "Bearer garbage" }, undefined, 401],
      ["PATCH", "/v1/secrets/A", auth, undefined, 405],
      ["POST", "/v1/secrets", jsonAuth, "{}", 405],
      ["GET", "/v1/secrets/_batch", auth, undefined, 405],
      ["GET", "/v1/secrets/a/b", auth, undefined, 404],
      ["GET", "/v1/secretsX", auth, undefined, 404],
      ["GET", "/v1/secrets/_hidden", auth, undefined, 400],
      ["PUT", "/v1/secrets/A", { ...auth, "content-type": "text/plain" }, '{"value":"v"}', 415],
      ["PUT", "/v1/secrets/A", jsonAuth, '{"value":"v","extra":1}', 400],
      ["PUT", "/v1/secrets/A", jsonAuth, "{}", 400],
      ["PUT", "/v1/secrets/A", jsonAuth, '{"value":1}', 400],
      ["PUT", "/v1/secrets/A", jsonAuth, '{"value":"\\ud800"}', 400],
      ["PUT", "/v1/secrets/A", jsonAuth, "not json", 400],
      ["PUT", "/v1/secrets/A?scope=..", jsonAuth, '{"value":"v"}', 400],
      ["PUT", "/v1/secrets/A?scope=a%2Fb", jsonAuth, '{"value":"v"}', 400],
      ["PUT", "/v1/secrets/A?scope=researcher&scope=researcher", jsonAuth, '{"value":"v"}', 400],
      ["PUT", "/v1/secrets/A?role=researcher", jsonAuth, '{"value":"v"}', 400],
      ["PUT", "/v1/secrets/A", jsonAuth, JSON.stringify({ value: "a".repeat(65537) }), 413],
      ["GET", "/v1/secrets/A?version=0", auth, undefined, 400],
      ["GET", "/v1/secrets/A?version=01", auth, undefined, 400],
      ["GET", "/v1/secrets/A?version=2147483648", auth, undefined, 400],
      ["GET", "/v1/secrets?x=1", auth, undefined, 400],
      ["DELETE", "/v1/secrets/A?version=1", auth, undefined, 400],
      ["POST", "/v1/secrets/_batch", jsonAuth, '{"names":[]}', 400],
      ["POST", "/v1/secrets/_batch", jsonAuth, '{"names":["A","A"]}', 400],
      ["POST", "/v1/secrets/_batch", jsonAuth, '{"names":["A"],"x":1}', 400],
      ["POST", "/v1/secrets/_batch", jsonAuth, '{"names":["A"]}', 404],
    ];
    for (const [method, target, headers, body, status] of cases) {
      const answer = await raw(method, target, headers, body);
      expect(answer.status, `${method} ${target} ${body?.slice(0, 40)}: ${answer.text}`).toBe(status);
      expect(answer.headers.get("cache-control")).toBe("no-store");
      expect(["BadRequest", "AuthenticationError", "CredentialError"]).toContain(JSON.parse(answer.text).error.type);
    }
    expect((await raw("PATCH", "/v1/secrets/A", auth)).headers.get("allow")).toBe("GET, PUT, DELETE");
    const put = await raw("PUT", "/v1/secrets/A?scope=*", jsonAuth, '{"value":"v"}'); // "*" is agent-level
    expect([put.status, JSON.parse(put.text).scope]).toEqual([201, "*"]);
    expect(Object.keys(JSON.parse(put.text)).sort()).toEqual(["created_at", "name", "scope", "version"]);
    const removed = await raw("DELETE", "/v1/secrets/A", auth);
    expect([removed.status, removed.text, removed.headers.get("content-length")]).toEqual([204, "", null]);
  });
});
