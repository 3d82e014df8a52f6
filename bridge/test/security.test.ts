// The bridge as an attacker sees it: a process in an agent's container on the pod that reaches
// every loopback port and every service on the pod network, holds its own SVID, and knows (or
// guesses) the key of a victim's credential. Against the bridge it gets nothing: no connection
// without a certificate from the trust bundle, no key outside its sidecar's tenants, no purge or
// revocation without an admin's JWT-SVID. Against Valkey directly it gets nothing either: no
// command without the password, and the bridge's own user can touch only the bridge's keys.
// Each test would pass an attack against the bridge before it authenticated anyone.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { Redis } from "iovalkey";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockKey } from "../../contract/index.ts";
import { DEV_AUDIENCE, ensureDevIdentity, INJECTOR_SPIFFE_ID, issueServiceSvid, issueX509Svid, mintJwtSvid } from "../../support/dev-identity.ts";
import { projectRoot } from "../../support/tools.ts";
import { BRIDGE_USER, respCommands, startValkey, startValkeyCluster, type ValkeyCluster, type ValkeyServer } from "../../support/valkey.ts";
import type { AccessConfig } from "../auth/access-config.ts";
import { startBridge } from "../index.ts";
import {
  ADMIN,
  type BridgeClient,
  credentialValue,
  expectErrorBody,
  FIXTURE_CALLER,
  fixtureAccess,
  type Reply,
  startTestBridge,
  type TestBridge,
  type TestIdentity,
  testIdentity,
  useStandaloneBridge,
} from "./helpers.ts";

const ACME_SIDECAR = "spiffe://hexr.local/sidecar/acme-corp/pod-a";
const GLOBEX_SIDECAR = "spiffe://hexr.local/sidecar/globex/pod-1";
const VICTIM = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";
const ATTACKER_AGENT = "spiffe://hexr.local/agent/acme-corp/untrusted-tool/main";
const VICTIM_KEY = `cred:${VICTIM}:aws_s3:us-east-1`;
const VICTIM_VALUE = credentialValue("VICTIMSECRET/K7MDENG/bPxRfiCYEXAMPLEKEY");
const PLANTED = credentialValue("ATTACKER-PLANTED-VALUE");
const ACME_PREFIX = "cred:spiffe://hexr.local/agent/acme-corp/";
/** A CA the bridge does not trust, issuing a certificate with the acme sidecar's SPIFFE ID. */
const FOREIGN_IDENTITY_DIR = path.join(projectRoot, ".run", "bridge-test-foreign-identity");

/** The deployment's access file: each tenant's sidecars for their tenant, the injector for all, one admin. */
function podAccess(id: TestIdentity): AccessConfig {
  return {
    callers: [
      { spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["acme-corp"] },
      { spiffe_id: "spiffe://hexr.local/sidecar/globex/*", tenants: ["globex"] },
      { spiffe_id: INJECTOR_SPIFFE_ID, tenants: ["*"] },
    ],
    admins: [ADMIN],
    jwt: fixtureAccess(id).jwt,
  };
}

describe("the bridge, attacked from an agent's container", () => {
  const env = useStandaloneBridge(podAccess);
  let acme: BridgeClient;
  let globex: BridgeClient;
  let injector: BridgeClient;
  let anonymous: BridgeClient;
  let agentSvid: BridgeClient;
  let foreign: BridgeClient;
  let lookalike: BridgeClient;

  /** The victim's entry and lock are exactly as the acme sidecar left them. */
  const expectVictimUntouched = async () => {
    const reply = await acme.get(VICTIM_KEY);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe(VICTIM_VALUE);
    expect(await env.raw.get(lockKey(VICTIM_KEY))).toBe("acme-pod-a");
  };

  beforeAll(async () => {
    const id = env.bridge.identity;
    acme = env.bridge.client(await id.client(ACME_SIDECAR));
    globex = env.bridge.client(await id.client(GLOBEX_SIDECAR));
    injector = env.bridge.client(await id.client(INJECTOR_SPIFFE_ID));
    anonymous = env.bridge.client(null);
    agentSvid = env.bridge.client(await id.client(ATTACKER_AGENT));
    await ensureDevIdentity(FOREIGN_IDENTITY_DIR);
    const spoofed = await issueX509Svid(ACME_SIDECAR, FOREIGN_IDENTITY_DIR);
    foreign = env.bridge.client({ cert: spoofed.cert, key: spoofed.key, ca: id.paths.ca });
    // Prefix confusion: "acme-corp-evil" starts with "acme-corp", but not with "acme-corp/".
    lookalike = env.bridge.client(await id.client("spiffe://hexr.local/sidecar/acme-corp-evil/pod-a"));
  });

  beforeAll(async () => {
    // The victim's sidecar cached the victim's credential and holds its exchange lock.
    expect((await acme.put(VICTIM_KEY, VICTIM_VALUE)).status).toBe(204);
    expect((await acme.lock(VICTIM_KEY, "acme-pod-a", 300_000)).status).toBe(201);
  });

  const everyRoute = (client: () => BridgeClient): [string, () => Promise<Reply>][] => [
    ["read the victim's credential", () => client().get(VICTIM_KEY)],
    ["plant a value under the victim's key", () => client().put(VICTIM_KEY, PLANTED, 43_200_000)],
    ["delete the victim's credential", () => client().delete(VICTIM_KEY)],
    ["take the victim's lock", () => client().lock(VICTIM_KEY, "attacker", 300_000)],
    ["release the victim's lock", () => client().unlock(VICTIM_KEY)],
    ["purge the victim's tenant", () => client().purge({ prefix: ACME_PREFIX })],
    ["record a revocation", () => client().revoke({ prefix: ACME_PREFIX })],
    ["poll the revocation log", () => client().revocations(-1)],
  ];

  describe("without a client certificate: 401 on every route", () => {
    it.each(everyRoute(() => anonymous))("cannot %s", async (_name, attack) => {
      expectErrorBody(await attack(), "Unauthenticated");
      await expectVictimUntouched();
    });

    it("gets /healthz, which holds no data", async () => {
      const reply = await anonymous.health();
      expect(reply.status).toBe(200);
      expect(reply.json()).toEqual({ status: "ok" });
    });
  });

  describe("with a certificate from a CA outside the trust bundle, naming the victim's sidecar: 401", () => {
    it.each(everyRoute(() => foreign))("cannot %s", async (_name, attack) => {
      expectErrorBody(await attack(), "Unauthenticated");
      await expectVictimUntouched();
    });
  });

  describe("with its own agent X.509-SVID (valid, but no sidecar): 403 on every route", () => {
    it.each(everyRoute(() => agentSvid))("cannot %s", async (_name, attack) => {
      expectErrorBody(await attack(), "Forbidden");
      await expectVictimUntouched();
    });

    it("cannot even read its own identity's keys: agents go through their sidecar", async () => {
      expectErrorBody(await agentSvid.get(`cred:${ATTACKER_AGENT}:aws_s3:us-east-1`), "Forbidden");
    });
  });

  describe("with a look-alike sidecar ID (acme-corp-evil): 403 on every route", () => {
    it.each(everyRoute(() => lookalike))("cannot %s", async (_name, attack) => {
      expectErrorBody(await attack(), "Forbidden");
      await expectVictimUntouched();
    });
  });

  describe("with another tenant's sidecar certificate", () => {
    it.each(everyRoute(() => globex).slice(0, 5))("cannot %s (403)", async (_name, attack) => {
      expectErrorBody(await attack(), "Forbidden");
      await expectVictimUntouched();
    });

    it.each(everyRoute(() => globex).slice(5, 7))("cannot %s without an admin's token (401)", async (_name, attack) => {
      expectErrorBody(await attack(), "Unauthenticated");
      await expectVictimUntouched();
    });

    it("cannot reach a tenant of the same name in another trust domain", async () => {
      expectErrorBody(await globex.put("cred:spiffe://other.example/agent/globex/a/b:aws_s3:us-east-1", "v"), "Forbidden");
    });

    it("still serves its own tenant, and polls the revocation log like every sidecar", async () => {
      const own = "cred:spiffe://hexr.local/agent/globex/billing/main:aws_s3:us-east-1";
      expect((await globex.put(own, "globex value")).status).toBe(204);
      expect((await globex.get(own)).body.toString()).toBe("globex value");
      expect((await globex.lock(own, "globex-pod")).status).toBe(201);
      expect((await globex.unlock(own, "globex-pod")).status).toBe(204);
      expect((await globex.revocations(-1)).status).toBe(200);
      expectErrorBody(await acme.get(own), "Forbidden");
    });
  });

  describe("purge and revocation need an admin's JWT-SVID, forwarded by a sidecar", () => {
    let admin: string;
    beforeAll(async () => {
      admin = await env.bridge.identity.token(ADMIN);
    });
    const asSidecar = (authorization?: string) => ({ headers: authorization ? { authorization } : undefined });
    const post = (route: string, authorization?: string) =>
      acme.call("POST", route, JSON.stringify({ prefix: ACME_PREFIX }), asSidecar(authorization));

    it.each(["/v1/purge", "/v1/revocations"])("%s from the victim's own sidecar without a token → 401", async (route) => {
      expectErrorBody(await post(route), "Unauthenticated");
      await expectVictimUntouched();
    });

    it.each(["/v1/purge", "/v1/revocations"])("%s with a valid JWT-SVID of a non-admin → 403", async (route) => {
      expectErrorBody(await post(route, `Bearer ${await env.bridge.identity.token(ATTACKER_AGENT)}`), "Forbidden");
      await expectVictimUntouched();
    });

    it.each(["/v1/purge", "/v1/revocations"])("%s with forged admin tokens → 401", async (route) => {
      const [header, , signature] = admin.split(".");
      const attackerToken = await env.bridge.identity.token(ATTACKER_AGENT);
      const [attackerHeader, attackerPayload] = attackerToken.split(".");
      const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
      const claims = { sub: ADMIN, aud: DEV_AUDIENCE, iss: "https://oidc.hexr.local", exp: Math.floor(Date.now() / 1000) + 600 };
      const forgeries = [
        // Signed by a key the attacker made itself (another dev identity's signing key).
        await mintJwtSvid(ADMIN, { dir: FOREIGN_IDENTITY_DIR }),
        // The attacker's real token with the subject changed to the admin's.
        `${attackerHeader}.${b64({ ...JSON.parse(Buffer.from(attackerPayload, "base64url").toString()), sub: ADMIN })}.${attackerToken.split(".")[2]}`,
        // The admin's signature on another payload.
        `${header}.${b64(claims)}.${signature}`,
        // No signature at all.
        `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`,
        // The admin's real token for another audience, and an expired one.
        await env.bridge.identity.token(ADMIN, { audience: "some-other-service" }),
        await env.bridge.identity.token(ADMIN, { issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 600 }),
      ];
      for (const token of forgeries) {
        const reply = await post(route, `Bearer ${token}`);
        expect(reply.status, token.slice(0, 20)).toBe(401);
        expectErrorBody(reply, "Unauthenticated");
      }
      expectErrorBody(await post(route, admin), "Unauthenticated"); // not "Bearer ..."
      await expectVictimUntouched();
    });

    it("a stolen admin token is useless without a sidecar's certificate", async () => {
      const stolen = env.bridge.client(null, admin);
      expectErrorBody(await stolen.purge({ prefix: ACME_PREFIX }), "Unauthenticated");
      const withAgentSvid = env.bridge.client(await env.bridge.identity.client(ATTACKER_AGENT), admin);
      expectErrorBody(await withAgentSvid.revoke({ prefix: ACME_PREFIX }), "Forbidden");
      await expectVictimUntouched();
    });

    it("the admin's JWT-SVID, forwarded by any sidecar, purges and revokes", async () => {
      const doomed = "cred:spiffe://hexr.local/agent/acme-corp/doomed/main:aws_s3:us-east-1";
      expect((await acme.put(doomed, "v")).status).toBe(204);
      const purged = await globex.call("POST", "/v1/purge", JSON.stringify({ prefix: `cred:spiffe://hexr.local/agent/acme-corp/doomed/` }), asSidecar(`Bearer ${admin}`));
      expect(purged.json()).toEqual({ deleted: 1 });
      const revoked = await post("/v1/revocations", `Bearer ${admin}`);
      expect(revoked.status).toBe(200);
      expect(revoked.json().deleted).toBe(1);
      expect((await acme.get(VICTIM_KEY)).status).toBe(404);
      expect((await globex.revocations(0)).json().prefixes).toEqual([ACME_PREFIX]);
    });
  });

  it("lets the injector (every tenant) read and write", async () => {
    const key = "cred:spiffe://hexr.local/agent/initech/x/main:aws_s3:us-east-1";
    expect((await injector.put(key, "v")).status).toBe(204);
    expect((await injector.get(key)).status).toBe(200);
  });

  it("refuses plain HTTP on its port", async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(env.bridge.port, "127.0.0.1", () => socket.write(`GET /v1/cred/${encodeURIComponent(VICTIM_KEY)} HTTP/1.1\r\nhost: x\r\n\r\n`));
      let received = "";
      socket.on("data", (chunk) => (received += chunk.toString("latin1")));
      socket.on("close", () => resolve(received));
      socket.on("error", () => resolve(received));
    });
    expect(answer).not.toContain("HTTP/1.1 200");
    expect(answer).not.toContain("VICTIMSECRET");
  });

  it("logs every refusal without a value or a token", () => {
    const logs = env.bridge.logs();
    expect(logs).toContain("request refused");
    expect(logs).toContain(ATTACKER_AGENT);
    expect(logs).not.toContain("VICTIMSECRET");
    expect(logs).not.toContain("ATTACKER-PLANTED");
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });
});

describe("TLS upkeep", () => {
  const env = useStandaloneBridge();

  /** One request on a new connection (no keep-alive) through `agent`; the served certificate's SAN and whether the session was resumed. */
  const once = (url: string, agent: Agent) =>
    new Promise<{ status: number; resumed: boolean; san: string }>((resolve, reject) => {
      httpsRequest(url, { agent }, (res) => {
        const socket = res.socket as TLSSocket;
        const san = socket.getPeerCertificate().subjectaltname ?? "";
        res.resume().on("end", () => resolve({ status: res.statusCode ?? 0, resumed: socket.isSessionReused(), san }));
      })
        .on("error", reject)
        .end();
    });

  it("keeps the caller of a resumed TLS session (what a reconnecting Envoy does)", async () => {
    const tls = await env.bridge.identity.client(FIXTURE_CALLER);
    const agent = new Agent({ keepAlive: false, cert: readFileSync(tls.cert!), key: readFileSync(tls.key!), ca: readFileSync(tls.ca) });
    const key = "cred:spiffe://hexr.test/agent/resume/a1/main:aws_s3:us-east-1";
    expect((await env.bridge.api.put(key, "v")).status).toBe(204);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await once(`${env.bridge.url}/v1/cred/${encodeURIComponent(key)}`, agent));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.slice(1).some((a) => a.resumed)).toBe(true);
    agent.destroy();
  });

  it("serves a rotated certificate without a restart", async () => {
    const id = env.bridge.identity;
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-rotation-"));
    const files = { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem"), trustBundle: id.paths.ca };
    copyFileSync(id.bridge.cert, files.cert);
    copyFileSync(id.bridge.key, files.key);
    writeFileSync(path.join(dir, "bridge.key"), "11".repeat(32));
    const bridge = await startBridge({
      valkey: env.valkey.url,
      valkeyPasswordFile: env.valkey.users.bridge.passwordFile,
      keyFile: path.join(dir, "bridge.key"),
      tls: files,
      access: fixtureAccess(id),
      tlsReloadIntervalMs: 50,
      logger: pino({ level: "silent" }),
    });
    const agent = new Agent({ keepAlive: false, ca: readFileSync(id.paths.ca), maxCachedSessions: 0 });
    try {
      expect((await once(`${bridge.url}/healthz`, agent)).san).toContain("URI:spiffe://hexr.local/hexr-system/bridge");
      // The next SVID (here: another service's, which also names 127.0.0.1), written as SPIRE's helper would.
      const next = await issueServiceSvid("valkey", path.dirname(id.paths.ca));
      copyFileSync(next.key, files.key);
      copyFileSync(next.cert, files.cert);
      const deadline = Date.now() + 5_000;
      let san = "";
      while (Date.now() < deadline && !san.includes("hexr-system/valkey")) {
        await new Promise((r) => setTimeout(r, 50));
        san = (await once(`${bridge.url}/healthz`, agent)).san;
      }
      expect(san).toContain("URI:spiffe://hexr.local/hexr-system/valkey");
    } finally {
      agent.destroy();
      await bridge.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- Valkey itself -------------------------------------------------------------------------------


describe("Valkey, attacked directly", () => {
  const env = useStandaloneBridge();

  it("refuses every command on a connection that has not authenticated (NOAUTH)", async () => {
    await env.bridge.api.put(VICTIM_KEY, VICTIM_VALUE);
    for (const command of [["GET", VICTIM_KEY], ["KEYS", "*"], ["SET", VICTIM_KEY, "planted"], ["FLUSHALL"], ["CONFIG", "GET", "*"]]) {
      const [reply] = await respCommands(env.valkey.port, command);
      expect(reply).toMatch(/^-NOAUTH/);
    }
    expect(await env.raw.exists(VICTIM_KEY)).toBe(1);
  });

  it("refuses wrong passwords and the default user (WRONGPASS)", async () => {
    const replies = await respCommands(
      env.valkey.port,
      ["AUTH", BRIDGE_USER, "guessed-password"],
      ["AUTH", "default", ""],
      ["AUTH", "hexr-admin", "hexr-admin"],
      ["AUTH", "guessed-password"],
    );
    for (const reply of replies) expect(reply).toMatch(/^-WRONGPASS/);
  });

  it("lets the bridge's own user touch only the bridge's keys, with only the bridge's commands (NOPERM)", async () => {
    const { username, password } = env.valkey.users.bridge;
    const bridgeUser = new Redis({ port: env.valkey.port, host: "127.0.0.1", username, password, maxRetriesPerRequest: 0 });
    try {
      for (const attempt of [
        () => bridgeUser.flushall(),
        () => bridgeUser.keys("*"),
        () => bridgeUser.config("GET", "requirepass"),
        () => bridgeUser.call("ACL", "LIST"),
        () => bridgeUser.call("ACL", "SETUSER", BRIDGE_USER, "+@all", "~*"),
        () => bridgeUser.call("SHUTDOWN"),
        () => bridgeUser.call("REPLICAOF", "127.0.0.1", "1"),
        () => bridgeUser.call("MONITOR"),
        () => bridgeUser.get("session:anything"),
        () => bridgeUser.set("other-app:key", "v"),
        () => bridgeUser.eval("return redis.call('FLUSHALL')", 0),
        () => bridgeUser.eval("return redis.call('GET', 'other-app:key')", 0),
      ]) {
        // Inside a script the refusal reads "The user executing the script can't run this command".
        await expect(attempt()).rejects.toThrow(/NOPERM|user executing the script can't|no permissions/);
      }
      expect(await env.raw.exists(VICTIM_KEY)).toBe(1);
    } finally {
      bridgeUser.disconnect();
    }
  });

  it("is never refused anything the bridge itself sends (no ACL denial in a full round of bridge traffic)", async () => {
    await env.raw.call("ACL", "LOG", "RESET");
    const { api } = env.bridge;
    const key = "cred:spiffe://hexr.test/agent/acl/a1/main:aws_s3:us-east-1";
    expect((await api.put(key, "v")).status).toBe(204);
    expect((await api.get(key)).status).toBe(200);
    expect((await api.lock(key, "o")).status).toBe(201);
    expect((await api.unlock(key, "o")).status).toBe(204);
    expect((await api.lock(key)).status).toBe(201);
    expect((await api.unlock(key)).status).toBe(204);
    expect((await api.delete(key)).status).toBe(204);
    expect((await api.purge({ prefix: "cred:spiffe://hexr.test/agent/acl/" })).status).toBe(200);
    expect((await api.revoke({ prefix: "cred:spiffe://hexr.test/agent/acl/" })).status).toBe(200);
    expect((await api.revocations(0)).status).toBe(200);
    expect((await api.health()).status).toBe(200);
    await env.raw.script("FLUSH"); // EVAL after EVALSHA misses
    expect((await api.lock(key, "o")).status).toBe(201);
    expect((await api.unlock(key, "o")).status).toBe(204);
    expect((await api.revocations(0)).status).toBe(200);
    expect(await env.raw.call("ACL", "LOG")).toEqual([]);
  });
});

describe("Valkey with TLS (a deployment option)", () => {
  let valkey: ValkeyServer;
  let bridge: TestBridge;

  beforeAll(async () => {
    const id = await testIdentity();
    const server = await issueServiceSvid("valkey", path.dirname(id.paths.ca));
    valkey = await startValkey({ tls: { cert: server.cert, key: server.key, ca: id.paths.ca } });
    bridge = await startTestBridge({ valkey: valkey.url, users: valkey.users, valkeyTlsCa: id.paths.ca });
  });
  afterAll(async () => {
    await bridge?.close();
    await valkey?.stop();
  });

  it("serves through a TLS Valkey that requires the bridge's client certificate", async () => {
    expect(valkey.url).toMatch(/^rediss:\/\//);
    const key = "cred:spiffe://hexr.test/agent/tls/a1/main:aws_s3:us-east-1";
    expect((await bridge.api.put(key, "over TLS")).status).toBe(204);
    expect((await bridge.api.get(key)).body.toString()).toBe("over TLS");
    expect((await bridge.api.health()).status).toBe(200);
  });

  it("has no plain-text port: a RESP client without TLS gets no answer", async () => {
    const answer = await Promise.race([
      respCommands(valkey.port, ["PING"]).catch((error: Error) => error.message),
      new Promise<string>((resolve) => setTimeout(() => resolve("no answer"), 1_000)),
    ]);
    expect(answer).not.toContain("+PONG");
  });

  it("refuses a TLS client without a certificate from the CA", async () => {
    const tls = valkey.tls!;
    const noCert = new Redis(valkey.adminUrl, { tls: { ca: readFileSync(tls.ca) }, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    noCert.on("error", () => {});
    try {
      await expect(noCert.connect().then(() => noCert.ping())).rejects.toThrow();
    } finally {
      noCert.disconnect();
    }
  });
});

describe("a Valkey cluster with TLS and ACL users", () => {
  let cluster: ValkeyCluster;
  let bridge: TestBridge;

  beforeAll(async () => {
    const id = await testIdentity();
    const server = await issueServiceSvid("valkey", path.dirname(id.paths.ca));
    cluster = await startValkeyCluster(3, { tls: { cert: server.cert, key: server.key, ca: id.paths.ca } });
    bridge = await startTestBridge({ cluster: [cluster.nodes[0]], users: cluster.users, valkeyTlsCa: id.paths.ca });
  });
  afterAll(async () => {
    await bridge?.close();
    await cluster?.stop();
  });

  it("serves keys on every master and purges across them", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `cred:spiffe://hexr.test/agent/tls-cluster/a${i}/main:aws_s3:us-east-1`);
    for (const key of keys) expect((await bridge.api.put(key, key)).status).toBe(204);
    for (const key of keys) expect((await bridge.api.get(key)).body.toString()).toBe(key);
    expect((await bridge.api.revoke({ prefix: "cred:spiffe://hexr.test/agent/tls-cluster/" })).json()).toEqual({ epoch: 1, deleted: 20 });
    expect((await bridge.api.health()).status).toBe(200);
  });
});
