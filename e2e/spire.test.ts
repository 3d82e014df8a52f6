// Real per-process identity: every SVID of this stack comes from a real SPIRE server and agent.
// The content crew (examples/python/content_crew) is discovered by `hexr build`, its three roles
// are registered by hexr-registrar (one entry per role, `unix:uid` of the role), each role process
// is started by `hexr run` under its own uid and fetches its own SVIDs from the Workload API.
// Envoy takes its X.509-SVID and the bundles over SDS and SPIRE's JWT keys from the OIDC discovery
// provider; the injector and the bridge get theirs from hexr-svid-files.
//
// What is checked: each role gets its own identity and only its grants; a role cannot obtain
// another's SVID by any means the trust boundary excludes (identity_probe.py); SVIDs rotate under
// load without a lost request; a JWT-SVID signed by a key SPIRE rotated out is refused once the
// bundle is updated; the SPIRE server restarting under load loses no warm request; a deleted
// entry's role is refused everywhere within the bound.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REGIONS } from "../contract/index.ts";
import { startProcess, type RunningProcess } from "../support/processes.ts";
import { spireTools, waitForSvid } from "../stack/spire.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, accessLines, eventually, exchange, expectNoSecretsInLogs, request, sleep, summary, type HttpAnswer } from "./helpers.ts";

const run = promisify(execFile);
const hexr = path.join(projectRoot, ".venv", "bin", "hexr");
const CREW = path.join(projectRoot, "examples", "python", "content_crew", "crew.py");
const ROLES = ["researcher", "writer", "editor"] as const;
type Role = (typeof ROLES)[number];
const AUDIENCE = "hexr-credential-injector";
/** Short, so that several rotations happen while the file runs (SPIRE rotates at half-life). */
const X509_TTL_SECONDS = 20;
const JWKS_REFRESH_SECONDS = 2;
/** The bound on refusing a deleted role everywhere: the registrar revokes as it deletes; sidecars poll every second. */
const REVOCATION_BOUND_MS = 5_000;

interface ProcessContext {
  agent_name: string;
  tenant: string;
  process_role: string;
  spiffe_id: string;
  unix_uid: number;
  resources: string[];
}

let stack: Stack;
let workDir: string;
let contextsDir: string;
let buildOutput: string;
const contexts = new Map<Role, ProcessContext>();
const ledger = new SecretLedger();

beforeAll(async () => {
  // Role processes run under their own uids: what they must reach (the build output, the marker
  // folder, the sockets' folder) is traversable by every user; what is theirs is theirs alone.
  mkdirSync(path.join(projectRoot, ".run"), { recursive: true });
  workDir = mkdtempSync(path.join(projectRoot, ".run", "spire-e2e-"));
  chmodSync(workDir, 0o755);
  const built = await run(hexr, ["build", CREW, "--tenant", "acme-corp", "--trust-domain", "hexr.local", "--out", path.join(workDir, "hexr")], { cwd: workDir });
  buildOutput = built.stdout;
  contextsDir = path.join(workDir, "hexr", "process-contexts");
  for (const role of ROLES) contexts.set(role, JSON.parse(readFileSync(path.join(contextsDir, `${role}.json`), "utf8")));
  const markers = path.join(workDir, "markers");
  mkdirSync(markers);
  chmodSync(markers, 0o1777);

  stack = await startStack({
    identity: "spire",
    spire: { contexts: [contextsDir], x509SvidTtlSeconds: X509_TTL_SECONDS, jwksRefreshSeconds: JWKS_REFRESH_SECONDS },
    filterOverrides: { revocation: { path: "/revoke", admin_spiffe_ids: [], poll_interval_ms: 500, deny_seconds: 60 } },
    injectorRevocation: { deny_seconds: 60, poll_interval_ms: 500 },
  });
  for (const role of ROLES) await waitForSvid(stack.spire!.spire, context(role).spiffe_id, { uid: context(role).unix_uid });
}, 180_000);

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await stack?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function context(role: Role): ProcessContext {
  const found = contexts.get(role);
  if (!found) throw new Error(`no process context for ${role}`);
  return found;
}

/** The environment a role process gets in the pod: the Workload API, the sidecar, the marker folder. */
function podEnvironment(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: path.join(workDir, "markers"),
    SPIFFE_ENDPOINT_SOCKET: `unix://${stack.spire!.spire.agentSocket}`,
    HEXR_SIDECAR_URL: stack.envoy.agentUrl,
    HEXR_CONTEXT_DIR: path.join(workDir, "markers"),
    CREW_S3_ENDPOINT: stack.parts.moto.url,
    GOOGLE_CLOUD_PROJECT: "hexr-dev",
    AWS_EC2_METADATA_DISABLED: "true",
  };
}

/** `hexr run --role ROLE -- COMMAND`: the role's process under the role's uid. */
async function runAsRole(role: Role, command: string[], extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run(hexr, ["run", "--role", role, "--contexts", contextsDir, ...extra, "--", ...command], {
      env: { ...podEnvironment(), ...env },
      cwd: workDir,
      timeout: 60_000,
    });
    return stdout;
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    throw new Error(`hexr run --role ${role} failed: ${(error as Error).message}\n${stdout}\n${stderr.slice(-3000)}`);
  }
}

const children: ChildProcess[] = [];

/**
 * The role's current JWT-SVID, straight from the Workload API as the role's uid. The agent hands
 * out the token it minted last for the same audiences: `extraAudience` asks for a fresh one.
 */
async function jwtSvidOf(role: Role, extraAudience?: string): Promise<string> {
  const uid = context(role).unix_uid;
  const audiences = [AUDIENCE, ...(extraAudience ? [extraAudience] : [])].join(",");
  const { stdout } = await run(spireTools.agent, ["api", "fetch", "jwt", "-audience", audiences, "-socketPath", stack.spire!.spire.agentSocket], { uid, gid: uid });
  const token = /token\(([^)]+)\):\s+(\S+)/.exec(stdout);
  if (!token) throw new Error(`spire-agent api fetch jwt printed no token for ${role}`);
  expect(token[1]).toBe(context(role).spiffe_id);
  return ledger.token(token[2]);
}

describe("hexr build and registration", () => {
  it("discovers the content crew's three roles and registers one entry per role, selected by its uid", async () => {
    expect(buildOutput).toContain("content-crew");
    for (const role of ROLES) expect(buildOutput).toMatch(new RegExp(`── ${role} `));
    const uids = ROLES.map((role) => context(role).unix_uid);
    expect(new Set(uids).size).toBe(3);
    const entries = await stack.spire!.spire.serverCommand(["entry", "show", "-parentID", stack.spire!.spire.nodeId]);
    for (const role of ROLES) {
      const { spiffe_id, unix_uid } = context(role);
      expect(spiffe_id).toBe(`spiffe://hexr.local/agent/acme-corp/content-crew/${role}`);
      const entry = entries.split(/\n\s*\n/).find((block) => block.includes(`SPIFFE ID        : ${spiffe_id}`));
      expect(entry, `${role}'s entry`).toBeDefined();
      expect(entry).toContain(`unix:uid:${unix_uid}`);
    }
  });
});

describe("each role process", () => {
  it("gets its own SVID from the Workload API and only its own grants", async () => {
    const reports = new Map<Role, any>();
    for (const role of ROLES) {
      const output = await runAsRole(role, [tools.python(), CREW]);
      reports.set(role, JSON.parse(output.trim().split("\n").pop()!));
    }
    const researcher = reports.get("researcher");
    expect(researcher.role).toBe("researcher");
    expect(researcher.results.gcp_bigquery).toMatchObject({ granted: true, spiffe_id: context("researcher").spiffe_id });
    expect(researcher.results.aws_s3).toMatchObject({ granted: false, status: 403 });
    const writer = reports.get("writer");
    expect(writer.results.aws_s3).toMatchObject({ granted: true, spiffe_id: context("writer").spiffe_id });
    expect(writer.results.gcp_bigquery).toMatchObject({ granted: false, status: 403 });
    expect(writer.wrote.listed).toBe(true);
    const editor = reports.get("editor");
    expect(editor.results.aws_s3).toMatchObject({ granted: false, status: 403 });
    expect(editor.results.gcp_bigquery).toMatchObject({ granted: false, status: 403 });
  });

  it("gets its identity from the Workload API with the Hexr SDK for TypeScript too", async () => {
    const output = await runAsRole("researcher", [process.execPath, path.join(projectRoot, "e2e", "agent", "sdk_identity.mjs"), "gcp_bigquery", "aws_s3"]);
    const report = JSON.parse(output.trim().split("\n").pop()!);
    expect(report.spiffe_id).toBe(context("researcher").spiffe_id);
    expect(report.results.gcp_bigquery).toEqual({ granted: true, spiffe_id: context("researcher").spiffe_id });
    expect(report.results.aws_s3).toMatchObject({ granted: false, status: 403 });
  });

  it("runs a stock boto3 agent on the JWT-SVID file `hexr run --jwt-svid-file` keeps for it", async () => {
    const tokenFile = path.join(workDir, "tokens", "writer-boto3", "token.jwt");
    const output = await runAsRole("writer", [tools.python(), path.join(projectRoot, "e2e", "agent", "s3_boto3.py")], ["--jwt-svid-file", tokenFile], {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: stack.envoy.awsCredentialsUrl,
      AWS_ENDPOINT_URL_S3: stack.parts.moto.url,
      AWS_REGION: "us-east-1",
      AGENT_BUCKET: "hexr-spire-boto3",
    });
    const report = JSON.parse(output.trim().split("\n").pop()!);
    expect(report.credential_method).toBe("container-role");
    expect(report.listed).toContain(report.written);
    // The token file is the writer's alone.
    const { uid, mode } = statSync(tokenFile);
    expect({ uid, mode: mode & 0o777 }).toEqual({ uid: context("writer").unix_uid, mode: 0o600 });
    // The door answered it as the writer (Envoy's access log: flushed on reopen).
    await stack.envoy.admin("/reopen_logs", "POST");
    await eventually("the door's answer to the writer in the access log", async () =>
      accessLines(stack.envoy).some((line) => line.path === "/v1/aws/credentials" && line.status === 200 && line.spiffe_id === context("writer").spiffe_id), 15_000);
  });

  it("cannot obtain another role's SVID: not by name, not by a marker, not from its token file, its memory or SPIRE's server", async () => {
    // The writer runs as a stock-SDK process would: `hexr run --jwt-svid-file` keeps its token file fresh.
    const tokenFile = path.join(workDir, "tokens", "writer", "token.jwt");
    const victim = spawn(hexr, ["run", "--role", "writer", "--contexts", contextsDir, "--jwt-svid-file", tokenFile, "--", "sleep", "120"], {
      env: { ...podEnvironment(), HEXR_PROBE_SECRET: "writer-only" },
      stdio: "ignore",
    });
    children.push(victim);
    await eventually("the writer's token file", async () => existsSync(tokenFile), 30_000);
    // The token file comes from the launcher's helper, which starts before the role's command:
    // the command may not have been exec'd yet.
    let victimPid = 0;
    await eventually("the writer's sleep, under the writer's uid", async () => {
      const sleeper = await run("pgrep", ["-u", String(context("writer").unix_uid), "-x", "sleep"]).catch(() => ({ stdout: "" }));
      victimPid = Number(sleeper.stdout.trim().split("\n")[0] || 0);
      return victimPid > 0;
    }, 30_000);

    // The crew's writer left its marker (the folder is sticky, so only it may replace that one): the
    // researcher writes the writer's marker afresh.
    rmSync(path.join(workDir, "markers", "content-crew-writer.json"), { force: true });
    const output = await runAsRole("researcher", [
      tools.python(), path.join(projectRoot, "e2e", "agent", "identity_probe.py"),
      "--victim-token-file", tokenFile,
      "--victim-pid", String(victimPid),
      "--victim-uid", String(context("writer").unix_uid),
      "--victim-spiffe-id", context("writer").spiffe_id,
      "--server-socket", stack.spire!.spire.serverSocket,
      "--claim-role", "writer",
    ]);
    victim.kill("SIGTERM");
    const report = JSON.parse(output.trim().split("\n").pop()!);
    const own = { x509: [context("researcher").spiffe_id], jwt: context("researcher").spiffe_id };
    expect(report.uid).toBe(context("researcher").unix_uid);
    expect(report.before).toEqual(own);
    expect(report.ask_for_victim_jwt).not.toBe("ok");
    expect(report.forge_marker).toBe("ok"); // anyone may write a marker; it attests nothing
    expect(report.after_marker).toEqual(own);
    for (const attempt of ["read_victim_token", "list_victim_token_dir", "read_victim_environ", "read_victim_memory", "become_victim", "become_root", "dial_spire_server"]) {
      expect([attempt, report[attempt]]).toEqual([attempt, "PermissionError"]);
    }
  });
});

/** One mTLS handshake with the sidecar as `files`' SVID: the serial of the certificate Envoy presents. */
async function sidecarCertificateSerial(files: { cert: string; key: string; bundle: string }): Promise<string> {
  const svid = await currentSvid(files);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: "127.0.0.1", port: stack.ports.agentMtls, ...svid, servername: "localhost" },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.end();
        resolve(serial);
      },
    );
    socket.once("error", reject);
  });
}

/**
 * The SVID in `files` as one consistent set: hexr-svid-files replaces each file atomically, but a
 * reader between the certificate's and the key's rename sees a new certificate with the old key.
 */
async function currentSvid(files: { cert: string; key: string; bundle: string }): Promise<{ cert: Buffer; key: Buffer; ca: Buffer }> {
  for (let attempt = 0; ; attempt++) {
    const [cert, key, ca] = [readFileSync(files.cert), readFileSync(files.key), readFileSync(files.bundle)];
    if (new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) return { cert, key, ca };
    if (attempt === 20) throw new Error(`${files.cert} and ${files.key} never matched`);
    await sleep(10);
  }
}

/** The role's X.509-SVID as files, kept fresh by hexr-svid-files running under the role's uid. */
async function roleSvidFiles(role: Role): Promise<{ files: { cert: string; key: string; bundle: string }; helper: RunningProcess }> {
  const uid = context(role).unix_uid;
  const dir = path.join(workDir, "svids", role);
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o711 });
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, uid, uid);
  const files = { cert: path.join(dir, "svid.pem"), key: path.join(dir, "svid-key.pem"), bundle: path.join(dir, "bundle.pem") };
  const helper = await startProcess({
    name: `svid-files-${role}`,
    command: spireTools.svidFiles,
    args: ["-workload-socket", `unix://${stack.spire!.spire.agentSocket}`, "-x509-cert", files.cert, "-x509-key", files.key, "-x509-bundle", files.bundle],
    uid,
    ready: { check: async () => Object.values(files).every((file) => existsSync(file)) },
    timeoutMs: 30_000,
  });
  return { files, helper };
}

describe("secrets by SVID", () => {
  it("keeps a role-level secret to its role with SPIRE-issued identities: the writer gets 403 for the researcher's", async () => {
    const value = ledger.value(`sk-${Date.now()}-spire-vault-probe`);
    const call = async (role: Role, method: string, path: string, body?: object) =>
      request(`${stack.envoy.agentUrl}${path}`, {
        method,
        headers: [["authorization", `Bearer ${await jwtSvidOf(role)}`], ...(body ? [["content-type", "application/json"] as [string, string]] : [])],
        body: body ? JSON.stringify(body) : undefined,
      });
    const put = await call("researcher", "PUT", "/v1/secrets/RESEARCH_DB_KEY?scope=researcher", { value });
    expect(put.status, summary(put)).toBe(201);
    expect((await call("researcher", "GET", "/v1/secrets/RESEARCH_DB_KEY")).json.value).toBe(value);
    const denied = await call("writer", "GET", "/v1/secrets/RESEARCH_DB_KEY");
    expect(denied.status, summary(denied)).toBe(403);
    expect(denied.text).not.toContain(value);
  });
});

describe("rotation and SPIRE's availability", () => {
  it("rotates the sidecar's and the agent's X.509-SVIDs under load and loses no request", async () => {
    const { files, helper } = await roleSvidFiles("writer");
    const token = await jwtSvidOf("writer");
    const sidecarSerials = new Set<string>();
    const agentSerials = new Set<string>();
    const failures: string[] = [];
    let served = 0;
    let done = false;
    const count = (answer: HttpAnswer) => {
      if (answer.status === 200) {
        served++;
        ledger.credentials(answer.json);
      } else {
        failures.push(summary(answer));
      }
    };
    // Over mTLS with the agent's current SVID (a new handshake each time).
    const overMtls = async () => {
      while (!done) count(await exchange(stack.envoy, { listener: "mtls", tls: await currentSvid(files), service: "aws_s3" }));
    };
    // Over JWT-SVIDs, on a key not cached yet now and then, so the sidecar calls the injector with its own SVID.
    const regions = [...REGIONS.aws];
    const overJwt = async () => {
      for (let i = 0; !done; i++) count(await exchange(stack.envoy, { token, service: "aws_s3", region: i % 20 === 0 ? regions[(i / 20) % regions.length] : undefined }));
    };
    const load = [overMtls(), overMtls(), overJwt()];
    const started = Date.now();
    try {
      // Until both have rotated while the load runs: SPIRE renews at half an SVID's lifetime.
      while (Date.now() - started < (X509_TTL_SECONDS + 25) * 1000 && (sidecarSerials.size < 2 || agentSerials.size < 2 || Date.now() - started < 3_000)) {
        agentSerials.add(new X509Certificate(readFileSync(files.cert)).serialNumber);
        sidecarSerials.add(await sidecarCertificateSerial(files));
        await sleep(200);
      }
    } finally {
      done = true;
      await Promise.all(load);
      await helper.stop();
    }
    console.log(`SVID rotation under load: ${served} requests served in ${Date.now() - started} ms, ${failures.length} lost, ${sidecarSerials.size} sidecar and ${agentSerials.size} agent certificates seen`);
    expect(failures).toEqual([]);
    expect(sidecarSerials.size, "the sidecar's certificate rotated").toBeGreaterThanOrEqual(2);
    expect(agentSerials.size, "the agent's SVID rotated").toBeGreaterThanOrEqual(2);
    expect(served).toBeGreaterThan(100);
  }, 120_000);

  it("keeps serving warm requests while the SPIRE server restarts", async () => {
    const token = await jwtSvidOf("writer");
    const first = await exchange(stack.envoy, { token, service: "aws_s3" });
    expect(first.status, summary(first)).toBe(200);
    const server = stack.spire!.spire.parts.server;
    await server.stop();
    const during = [];
    for (let i = 0; i < 50; i++) during.push(await exchange(stack.envoy, { token, service: "aws_s3" }));
    await server.start();
    const after = [];
    for (let i = 0; i < 20; i++) after.push(await exchange(stack.envoy, { token, service: "aws_s3" }));
    expect([...during, ...after].filter((answer) => answer.status !== 200).map(summary)).toEqual([]);
    // The agent reconnects: a new entry still reaches role processes after the restart.
    await waitForSvid(stack.spire!.spire, context("editor").spiffe_id, { uid: context("editor").unix_uid });
  }, 60_000);
});

describe("revocation by entry", () => {
  it("deleting a role's context: its entry goes, no new SVID is issued, and it is refused everywhere within the bound", async () => {
    const token = await jwtSvidOf("writer");
    const warm = await exchange(stack.envoy, { token, service: "aws_s3" });
    expect(warm.status, summary(warm)).toBe(200);
    rmSync(path.join(contextsDir, "writer.json"));
    const started = Date.now();
    const output = await stack.spire!.register([contextsDir], { revokeUrl: `${stack.envoy.agentUrl}/revoke` });
    expect(output).toContain(`deleted ${context("writer").spiffe_id}`);
    let refusedAfterMs = -1;
    for (let answer = await exchange(stack.envoy, { token, service: "aws_s3" }); ; answer = await exchange(stack.envoy, { token, service: "aws_s3" })) {
      if (answer.status === 403) {
        refusedAfterMs = Date.now() - started;
        break;
      }
      expect(answer.status, summary(answer)).toBe(200);
      if (Date.now() - started > REVOCATION_BOUND_MS * 3) break;
      await sleep(100);
    }
    console.log(`revocation by entry: the deleted role refused ${refusedAfterMs} ms after the registrar started`);
    expect(refusedAfterMs).toBeGreaterThanOrEqual(0);
    expect(refusedAfterMs).toBeLessThanOrEqual(REVOCATION_BOUND_MS);
    // Its secrets too: the vault door refuses the revoked identity before the vault sees it (a
    // name that exists nowhere would otherwise be the vault's 404). Each worker of the sidecar reads
    // the revocation on its own tick, so within the bound every worker refuses: ten in a row.
    const refusals: HttpAnswer[] = [];
    await eventually("every worker's vault door refuses the revoked writer", async () => {
      refusals.length = 0;
      for (let i = 0; i < 10; i++) {
        const secret = await request(`${stack.envoy.agentUrl}/v1/secrets/NEVER_STORED`, { headers: [["authorization", `Bearer ${token}`]] });
        if (secret.status !== 403) return false;
        refusals.push(secret);
      }
      return true;
    }, REVOCATION_BOUND_MS);
    for (const refusal of refusals) expect(refusal.json.error.message).toMatch(/revoked/);
    // The other roles keep their identities.
    const researcher = await exchange(stack.envoy, { token: await jwtSvidOf("researcher"), service: "gcp_bigquery" });
    expect(researcher.status, summary(researcher)).toBe(200);
    // The agent stops issuing the writer's SVIDs once it syncs with the server.
    await eventually("no SVID for the writer's uid", async () => {
      try {
        await jwtSvidOf("writer");
        return false;
      } catch {
        return true;
      }
    }, 30_000);
  }, 90_000);
});

// After the deletion: the writer is gone, the researcher remains.
describe("JWT key rotation", () => {
  it("refuses a JWT-SVID signed by a key SPIRE rotated out, once the bundle is updated", async () => {
    const old = await jwtSvidOf("researcher");
    const before = await exchange(stack.envoy, { token: old, service: "gcp_bigquery" });
    expect(before.status, summary(before)).toBe(200);
    const spire = stack.spire!.spire;
    const authorities = () => spire.serverCommand(["localauthority", "jwt", "show"]);
    const idOf = (shown: string, which: "Active" | "Prepared") => new RegExp(`${which} JWT authority:\\s+Authority ID:\\s+(\\S+)`).exec(shown)?.[1];
    const oldAuthority = idOf(await authorities(), "Active");
    expect(oldAuthority).toBeDefined();
    await spire.serverCommand(["localauthority", "jwt", "prepare"]);
    const prepared = idOf(await authorities(), "Prepared");
    expect(prepared).toBeDefined();
    await spire.serverCommand(["localauthority", "jwt", "activate", "-authorityID", prepared!]);
    await spire.serverCommand(["localauthority", "jwt", "taint", "-authorityID", oldAuthority!]);
    await spire.serverCommand(["localauthority", "jwt", "revoke", "-authorityID", oldAuthority!]);
    // The old key leaves the bundle; Envoy and the injector fetch it every JWKS_REFRESH_SECONDS.
    await eventually("the old key's token is refused", async () => (await exchange(stack.envoy, { token: old, service: "gcp_bigquery" })).status === 401, 30_000);
    // A JWT-SVID minted now is signed by the new key, and accepted.
    const fresh = await jwtSvidOf("researcher", "key-rotation-probe");
    expect(JSON.parse(Buffer.from(fresh.split(".")[0], "base64url").toString()).kid).toBe(prepared);
    let last: HttpAnswer | undefined;
    await eventually("a token signed by the new key is accepted", async () => (last = await exchange(stack.envoy, { token: fresh, service: "gcp_bigquery" })).status === 200, 30_000)
      .catch((error) => {
        throw new Error(`${(error as Error).message}; last answer ${last ? summary(last) : "none"}`);
      });
  }, 90_000);

  it("leaks no token or credential into any log", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
