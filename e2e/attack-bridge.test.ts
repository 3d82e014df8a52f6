// L2 as an attacker in an agent's container sees it in the running stack: it reaches the bridge's
// and Valkey's loopback ports, holds its own SVIDs (X.509 and JWT), can read /proc of the pod's
// other processes, and knows the key of a victim's credential (the key format is public). The
// sidecar's own traffic to the bridge (mTLS, checked against the bridge's SPIFFE ID) keeps working.
// bridge/test/security.test.ts covers every route and forgery against a bridge alone; this file
// checks the stack's wiring: the access file it writes, Envoy's hexr_bridge cluster, Valkey's ACL.
import { execFile } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BRIDGE_SPIFFE_ID, issueX509Svid, mintJwtSvid } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
import { cliBinary, respCommands } from "../support/valkey.ts";
import { BRIDGE_FILES, VALKEY_ACL_IN_CONTAINER, renderComposeEnvoyConfig } from "../stack/compose.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, eventually, exchange, expectNoSecretsInLogs, request, summary, type HttpAnswer } from "./helpers.ts";

const REGION = "eu-west-3";
const VICTIM_KEY = `cred:${DEMO_AGENT_ID}:aws_s3:${REGION}`;
const VICTIM_PATH = `/v1/cred/${encodeURIComponent(VICTIM_KEY)}`;
const ACME_PREFIX = "cred:spiffe://hexr.local/agent/acme-corp/";
const OTHER_TENANT_SIDECAR = "spiffe://hexr.local/sidecar/globex/pod-7";
/** The filter's revocation admin; the stack makes the filter's admins the bridge's admins. */
const ADMIN = "spiffe://hexr.local/agent/acme-corp/platform-admin/ops";

let stack: Stack;
const ledger = new SecretLedger();
let victimToken: string;
/** TLS files: an agent's own X.509-SVID, another tenant's sidecar, and no certificate at all. */
let agentTls: { cert: string; key: string; ca: string };
let otherSidecarTls: { cert: string; key: string; ca: string };
let noCertTls: { ca: string };

beforeAll(async () => {
  stack = await startStack({
    filterOverrides: { revocation: { path: "/revoke", admin_spiffe_ids: [ADMIN], poll_interval_ms: 1_000 } },
  });
  victimToken = ledger.token(await mintJwtSvid(DEMO_AGENT_ID));
  const agent = await issueX509Svid(DEMO_AGENT_ID);
  const other = await issueX509Svid(OTHER_TENANT_SIDECAR);
  agentTls = { cert: agent.cert, key: agent.key, ca: stack.identity.ca };
  otherSidecarTls = { cert: other.cert, key: other.key, ca: stack.identity.ca };
  noCertTls = { ca: stack.identity.ca };
  // The victim's sidecar exchanged the victim's credential and wrote it to L2 through the bridge.
  const first = await exchange(stack.envoy, { token: victimToken, region: REGION });
  expect(first.status, summary(first)).toBe(200);
  ledger.credentials(first.json);
  await eventually("the sidecar's L2 write", async () => (await asSidecar("GET", VICTIM_PATH)).status === 200);
});

afterAll(async () => {
  if (stack) await expectNoSecretsInLogs(stack, ledger);
  await stack?.stop();
});

function asSidecar(method: string, path: string, body?: string): Promise<HttpAnswer> {
  return request(`${stack.parts.bridge.url}${path}`, { method, body, tls: stack.l2.bridgeTls });
}

/** The victim's entry in L2 is still the one its sidecar wrote. */
async function expectVictimEntryIntact(): Promise<void> {
  const entry = await asSidecar("GET", VICTIM_PATH);
  expect(entry.status).toBe(200);
  expect(entry.text).not.toContain("PLANTED");
  expect(entry.text).toContain(DEMO_AGENT_ID);
}

describe("the stack's bridge", () => {
  it("serves the pod's sidecar over mTLS: the filter's L2 write passed the bridge's access check", async () => {
    const entry = await asSidecar("GET", VICTIM_PATH);
    expect(entry.status).toBe(200);
    const pod = await stack.addSidecar("pod-attack-b");
    const fromL2 = await exchange(pod, { token: victimToken, region: REGION });
    expect({ status: fromL2.status, tier: fromL2.headers["x-hexr-cache"] }, summary(fromL2)).toEqual({ status: 200, tier: "L2" });
  });

  const attacks: [string, string, string?][] = [
    ["read the victim's credential", "GET"],
    ["plant a value under the victim's key", "PUT", "9999999999\nPLANTED"],
    ["delete the victim's credential", "DELETE"],
  ];

  it.each(attacks)("refuses a client without a certificate to %s (401)", async (_name, method, body) => {
    const query = method === "PUT" ? "?ttl_ms=43200000" : "";
    const answer = await request(`${stack.parts.bridge.url}${VICTIM_PATH}${query}`, { method, body, tls: noCertTls });
    expect({ status: answer.status, type: answer.json?.error?.type }).toEqual({ status: 401, type: "Unauthenticated" });
    await expectVictimEntryIntact();
  });

  it.each(attacks)("refuses the agent's own X.509-SVID to %s (403)", async (_name, method, body) => {
    const query = method === "PUT" ? "?ttl_ms=43200000" : "";
    const answer = await request(`${stack.parts.bridge.url}${VICTIM_PATH}${query}`, { method, body, tls: agentTls });
    expect({ status: answer.status, type: answer.json?.error?.type }).toEqual({ status: 403, type: "Forbidden" });
    await expectVictimEntryIntact();
  });

  it.each(attacks)("refuses another tenant's sidecar certificate to %s (403)", async (_name, method, body) => {
    const query = method === "PUT" ? "?ttl_ms=43200000" : "";
    const answer = await request(`${stack.parts.bridge.url}${VICTIM_PATH}${query}`, { method, body, tls: otherSidecarTls });
    expect({ status: answer.status, type: answer.json?.error?.type }).toEqual({ status: 403, type: "Forbidden" });
    await expectVictimEntryIntact();
  });

  it("refuses another tenant's sidecar the victim's exchange lock, taking and releasing", async () => {
    const lockPath = `/v1/locks/${encodeURIComponent(VICTIM_KEY)}`;
    const take = await request(`${stack.parts.bridge.url}${lockPath}?ttl_ms=300000`, { method: "PUT", body: "attacker", tls: otherSidecarTls });
    expect(take.status).toBe(403);
    const held = await request(`${stack.parts.bridge.url}${lockPath}?ttl_ms=1000`, { method: "PUT", body: "sidecar", tls: stack.l2.bridgeTls });
    expect(held.status).toBe(201);
    const release = await request(`${stack.parts.bridge.url}${lockPath}`, { method: "DELETE", tls: otherSidecarTls });
    expect(release.status).toBe(403);
    const stillHeld = await request(`${stack.parts.bridge.url}${lockPath}?ttl_ms=1000`, { method: "PUT", body: "again", tls: stack.l2.bridgeTls });
    expect(stillHeld.status).toBe(409);
    expect((await request(`${stack.parts.bridge.url}${lockPath}`, { method: "DELETE", body: "sidecar", tls: stack.l2.bridgeTls })).status).toBe(204);
  });

  it("refuses purge and revocation without an admin's JWT-SVID, even from the victim's own sidecar", async () => {
    const body = JSON.stringify({ prefix: ACME_PREFIX });
    for (const route of ["/v1/purge", "/v1/revocations"]) {
      const bare = await request(`${stack.parts.bridge.url}${route}`, { method: "POST", body, tls: stack.l2.bridgeTls });
      expect(bare.status, route).toBe(401);
      const withAgentToken = await request(`${stack.parts.bridge.url}${route}`, {
        method: "POST",
        body,
        tls: stack.l2.bridgeTls,
        headers: [["authorization", `Bearer ${victimToken}`]],
      });
      expect(withAgentToken.status, route).toBe(403);
      const noCert = await request(`${stack.parts.bridge.url}${route}`, { method: "POST", body, tls: noCertTls, headers: [["authorization", `Bearer ${victimToken}`]] });
      expect(noCert.status, route).toBe(401);
    }
    await expectVictimEntryIntact();
  });

  it("records a revocation for the filter's admin, its JWT-SVID forwarded by the sidecar (what the filter sends)", async () => {
    const adminToken = ledger.token(await mintJwtSvid(ADMIN));
    const answer = await request(`${stack.parts.bridge.url}/v1/revocations`, {
      method: "POST",
      body: JSON.stringify({ prefix: "cred:spiffe://hexr.local/agent/acme-corp/nobody/" }),
      tls: stack.l2.bridgeTls,
      headers: [["content-type", "application/json"], ["authorization", `Bearer ${adminToken}`]],
    });
    expect({ status: answer.status, deleted: answer.json?.deleted }).toEqual({ status: 200, deleted: 0 });
    // The same token without a sidecar's certificate is worth nothing.
    const stolen = await request(`${stack.parts.bridge.url}/v1/revocations`, {
      method: "POST",
      body: JSON.stringify({ prefix: ACME_PREFIX }),
      tls: agentTls,
      headers: [["authorization", `Bearer ${adminToken}`]],
    });
    expect(stolen.status).toBe(403);
    await expectVictimEntryIntact();
  });

  it("does not speak plain HTTP", async () => {
    const plain = stack.parts.bridge.url.replace("https://", "http://");
    const answer = await request(`${plain}${VICTIM_PATH}`, { timeoutMs: 2_000 }).catch((error: Error) => error);
    expect(answer instanceof Error || answer.status !== 200).toBe(true);
  });

  it("keeps /healthz open, without data", async () => {
    const answer = await request(`${stack.parts.bridge.url}/healthz`, { tls: noCertTls });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ status: "ok" });
  });
});

describe("the stack's Valkey", () => {
  const respLines = (...commands: string[][]) => respCommands(stack.parts.valkey.port, ...commands);

  it("refuses a raw RESP client without AUTH (NOAUTH) and with guessed passwords (WRONGPASS)", async () => {
    const [get, keys, flush] = await respLines(["GET", VICTIM_KEY], ["KEYS", "*"], ["FLUSHALL"]);
    for (const reply of [get, keys, flush]) expect(reply).toMatch(/^-NOAUTH/);
    const guesses = await respLines(["AUTH", "hexr-bridge", "hexr-bridge"], ["AUTH", "default", ""], ["AUTH", "password"]);
    for (const reply of guesses) expect(reply).toMatch(/^-WRONGPASS/);
    await expectVictimEntryIntact();
  });

  it("refuses redis-cli without the password", async () => {
    const { stdout, stderr } = await promisify(execFile)(cliBinary(), ["-p", String(stack.parts.valkey.port), "GET", VICTIM_KEY], {
      timeout: 5_000,
    }).catch((error: { stdout: string; stderr: string }) => error);
    expect(`${stdout}${stderr}`).toMatch(/NOAUTH/);
  });

  it("shows no password on any process's command line or environment, and keeps the password files 0600", () => {
    const { password: adminPassword } = stack.l2.valkeyAdmin;
    const bridgePassword = readFileSync(path.join(stack.runDir, "valkey-users", "hexr-bridge.password"), "utf8").trim();
    for (const part of [stack.parts.valkey, stack.parts.bridge]) {
      for (const file of ["cmdline", "environ"]) {
        const content = readFileSync(`/proc/${part.pid}/${file}`, "latin1");
        expect(content.includes(bridgePassword), `${part.name} ${file}`).toBe(false);
        expect(content.includes(adminPassword), `${part.name} ${file}`).toBe(false);
      }
    }
    for (const name of ["hexr-bridge.password", "hexr-admin.password"]) {
      expect(statSync(path.join(stack.runDir, "valkey-users", name)).mode & 0o777).toBe(0o600);
    }
  });
});

describe("the configuration the stack and docker-compose ship", () => {
  const bridgeCluster = (yaml: string) =>
    (parse(yaml).static_resources.clusters as any[]).find((cluster) => cluster.name === "hexr_bridge");

  it("has Envoy call the bridge with the sidecar's SVID and accept only the bridge's SPIFFE ID", () => {
    for (const yaml of [readFileSync(stack.envoy.configPath, "utf8"), renderComposeEnvoyConfig()]) {
      const tls = bridgeCluster(yaml).transport_socket.typed_config;
      expect(tls["@type"]).toMatch(/UpstreamTlsContext$/);
      expect(tls.common_tls_context.tls_certificates[0].certificate_chain.filename).toMatch(/sidecar\.pem$/);
      expect(tls.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([
        { san_type: "URI", matcher: { exact: BRIDGE_SPIFFE_ID } },
      ]);
    }
  });

  it("never lets compose's bridge listen without TLS and an access file, nor Valkey without its users", () => {
    const compose = parse(readFileSync(path.join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }).services;
    const flag = (command: string[], name: string) => command[command.indexOf(name) + 1];
    const bridge = compose.bridge.command as string[];
    expect(flag(bridge, "--tls-cert")).toBe(BRIDGE_FILES.tlsCert);
    expect(flag(bridge, "--tls-key")).toBe(BRIDGE_FILES.tlsKey);
    expect(flag(bridge, "--trust-bundle")).toBe(BRIDGE_FILES.trustBundle);
    expect(flag(bridge, "--access-file")).toBe(BRIDGE_FILES.accessFile);
    expect(flag(bridge, "--valkey-password-file")).toBe(BRIDGE_FILES.valkeyPasswordFile);
    expect(flag(bridge, "--key-file")).toBe(BRIDGE_FILES.keyFile);
    const valkey = compose.valkey.command as string[];
    expect(flag(valkey, "--aclfile")).toBe(VALKEY_ACL_IN_CONTAINER);
    expect(compose.valkey.volumes).toContain(`./${BRIDGE_FILES.valkeyAclFile}:${VALKEY_ACL_IN_CONTAINER}:ro`);
    expect(compose.valkey.depends_on.setup).toEqual({ condition: "service_completed_successfully" });
  });
});
