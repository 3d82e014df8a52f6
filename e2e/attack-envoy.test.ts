// The sidecar's Envoy as an attacker in an agent process sees it: it reaches every loopback port of
// the pod, holds its own SVIDs (JWT and X.509), and can sign whatever it likes with keys of its
// own. Envoy's admin is on no TCP port; the stats listener opens nothing but GET /stats/prometheus;
// jwt_authn refuses a token without exp or with an absurd lifetime; the mTLS listener takes each
// trust domain's certificates only from that domain's CA; an mTLS connection ends with the SVID's
// lifetime; and the access log says who got which credential from which tier, with no secret in it.
//
// What this file cannot show: here the "agent" runs as the same Unix user as Envoy, so the admin
// socket's mode 0600 does not keep it out (in a pod the agent's container neither mounts the
// socket's directory nor runs as Envoy's user); the test checks the mode Envoy gave the socket.
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import "reflect-metadata"; // @peculiar/x509 loads tsyringe, which needs the Reflect metadata polyfill
import * as x509 from "@peculiar/x509";
import { SignJWT, importPKCS8 } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_AUDIENCE, DEV_ISSUER, DEV_TRUST_DOMAIN, issueX509Svid, mintJwtSvid } from "../support/dev-identity.ts";
import { freePort } from "../support/processes.ts";
import { adminReady, createEnvoySidecar, type EnvoySidecar } from "../stack/envoy.ts";
import { DEMO_AGENT_ID, defaultWasmPath, devSidecarIdentity, nativeSidecarValues, startStack, type Stack } from "../stack/index.ts";
import { DEFAULT_JWT_MAX_LIFETIME_SECONDS, loadFilterConfiguration } from "../stack/render.ts";
import {
  SecretLedger,
  accessLines,
  cacheCounters,
  delta,
  eventually,
  exchange,
  expectContractError,
  expectCredential,
  expectNoSecretsInLogs,
  request,
  sleep,
  summary,
  type HttpAnswer,
} from "./helpers.ts";

const VICTIM = DEMO_AGENT_ID; // research-analyst/main; its aws_s3 credential is in L1 throughout
const OTHER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"; // the attacker's own identity
const REGION = "us-west-2";
/** Trust domain B: the second sidecar below trusts it, with a CA of its own. */
const TD_B = "partner.test";
const B_AGENT = `spiffe://${TD_B}/agent/acme-corp/research-analyst/main`;

let stack: Stack;
const ledger = new SecretLedger();
let victimToken: string;
let victimAnswer: HttpAnswer;
let scratch: string;

beforeAll(async () => {
  stack = await startStack();
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-e2e-attack-envoy-"));
  victimToken = ledger.token(await mintJwtSvid(VICTIM));
  victimAnswer = await exchange(stack.envoy, { token: victimToken, region: REGION });
  ledger.credentials(expectCredential(victimAnswer, "L3", VICTIM));
});

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Not one answer may carry the victim's credential. */
function expectNotVictims(answer: HttpAnswer): void {
  const secret = victimAnswer.json.credentials.SecretAccessKey as string;
  expect(answer.text.includes(secret), "the victim's secret").toBe(false);
  expect(answer.json?.spiffe_id === VICTIM).toBe(false);
}

// ---- Envoy's admin -------------------------------------------------------------------------------

/** The TCP ports a process listens on (from /proc: its socket inodes, matched in /proc/net/tcp{,6}). */
function listeningTcpPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is fields[1] (ADDR:PORT in hex), st fields[3] (0A = LISTEN), inode fields[9].
      if (fields.length > 9 && fields[3] === "0A" && inodes.has(fields[9])) ports.add(parseInt(fields[1].split(":")[1], 16));
    }
  }
  return ports;
}

const port = (url: string) => Number(new URL(url).port);

/** A request with its path sent byte for byte (no URL normalisation on this side). */
function rawRequest(target: number, method: string, rawPath: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: target, method, path: rawPath, agent: false, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${rawPath} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

describe("Envoy's admin", () => {
  it("listens on no TCP port: the sidecar's only TCP listeners are the agents' two, the metadata listener and the stats listener", async () => {
    const sidecar = stack.envoy;
    const metadata = `http://${sidecar.metadataListeners[0].gceMetadataHost}`;
    expect(listeningTcpPorts(sidecar.pid!)).toEqual(new Set([port(sidecar.agentUrl), port(sidecar.agentMtlsUrl), port(metadata), port(sidecar.statsUrl)]));
    // None of them answers as the admin.
    const svid = await issueX509Svid(OTHER);
    for (const base of [sidecar.agentUrl, sidecar.agentMtlsUrl, metadata, new URL(sidecar.statsUrl).origin]) {
      for (const adminPath of ["/ready", "/server_info", "/config_dump", "/logging", "/stats"]) {
        const answer = await request(`${base}${adminPath}`, { tls: { ...svid, ca: stack.identity.ca } });
        expect(answer.status, `${base}${adminPath}`).toBe(404);
      }
    }
  });

  it("is a Unix socket of mode 0600, in a directory of mode 0700, and answers there", async () => {
    const socket = statSync(stack.envoy.adminSocket);
    expect(socket.isSocket()).toBe(true);
    expect((socket.mode & 0o777).toString(8)).toBe("600");
    expect((statSync(path.dirname(stack.envoy.adminSocket)).mode & 0o777).toString(8)).toBe("700");
    expect(await adminReady(stack.envoy.adminSocket)).toBe(true);
  });

  it("is reached over TCP only for GET /stats/prometheus: every other path and method is 404", async () => {
    const statsPort = port(stack.envoy.statsUrl);
    await sleep(300); // the filter hands its counters to Envoy on its tick (metrics_flush_ms: 250)
    const scrape = await request(stack.envoy.statsUrl);
    expect(scrape.status).toBe(200);
    expect(scrape.headers["content-type"]).toMatch(/^text\/plain/);
    // The filter's metrics: Envoy strips the wasmcustom namespace from their Prometheus names, and
    // the sidecar's stats_tags turn ".tier.L3" into a label.
    const l3Hits = scrape.text.split("\n").filter((line) => line.startsWith('hexr_cache_hits{tier="L3"}'));
    expect(l3Hits).toHaveLength(1);
    expect(l3Hits[0]).toMatch(/^hexr_cache_hits\{tier="L3"\} [1-9]/);
    expect(scrape.text).not.toMatch(/^hexr_(cache_hits|cache_misses|tool_invocations)_(tier|service)_/m);
    expect(scrape.text.includes("wasmcustom"), "a wasmcustom. name left in Prometheus output").toBe(false);

    const attempts: [string, string][] = [
      ["POST", "/logging?level=debug"],
      ["POST", "/logging?jwt=trace"],
      ["GET", "/logging"],
      ["GET", "/config_dump"],
      ["GET", "/config_dump?include_eds"],
      ["POST", "/quitquitquit"],
      ["POST", "/healthcheck/fail"],
      ["POST", "/drain_listeners"],
      ["POST", "/runtime_modify?envoy.reloadable_features.x=false"],
      ["POST", "/reset_counters"],
      ["GET", "/runtime"],
      ["GET", "/clusters"],
      ["GET", "/certs"],
      ["GET", "/memory"],
      ["GET", "/stats"],
      ["GET", "/stats?format=json"],
      ["GET", "/ready"],
      ["POST", "/stats/prometheus"],
      ["PUT", "/stats/prometheus"],
      ["GET", "/stats/prometheus/"],
      ["GET", "/stats/prometheus/../logging"],
      ["POST", "/stats/prometheus/../quitquitquit"],
      ["GET", "//config_dump"],
      ["GET", "/STATS/PROMETHEUS"],
    ];
    for (const [method, attempt] of attempts) {
      const answer = await rawRequest(statsPort, method, attempt);
      expect(answer.status, `${method} ${attempt}`).toBe(404);
      expect(answer.text, `${method} ${attempt}`).toMatch(/^not found: this listener serves GET \/stats\/prometheus only/);
    }
    // An escaped slash is refused before routing.
    expect((await rawRequest(statsPort, "POST", "/stats%2Fprometheus%2F..%2F..%2Fquitquitquit")).status).toBe(400);

    // Nothing took effect: Envoy runs, at its log level, its counters intact, still healthy.
    expect(stack.envoy.running).toBe(true);
    const levels = await stack.envoy.admin("/logging", "POST");
    expect(levels.text).toMatch(/^\s*jwt: info$/m);
    expect(levels.text).not.toMatch(/: (debug|trace)$/m);
    expect((await cacheCounters(stack.envoy)).hits.L3).toBeGreaterThanOrEqual(1);
    expect(await adminReady(stack.envoy.adminSocket)).toBe(true);
    const again = await exchange(stack.envoy, { token: victimToken, region: REGION });
    expectCredential(again, "L1", VICTIM);
  });
});

// ---- JWT-SVID lifetimes --------------------------------------------------------------------------

/** A JWT-SVID with a valid signature (the dev key every sidecar trusts) and exactly these claims. */
async function signWithDevKey(claims: Record<string, unknown>): Promise<string> {
  const key = await importPKCS8(readFileSync(stack.identity.signingKey, "utf8"), "ES256");
  const { keys } = JSON.parse(readFileSync(stack.identity.jwks, "utf8")) as { keys: { kid: string }[] };
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: keys[0].kid, typ: "JWT" }).sign(key);
}

describe("JWT-SVID lifetimes", () => {
  it("a validly signed token without exp, or valid for longer than max_lifetime, gets the filter's JSON 401 while the victim's credential is in L1", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: VICTIM, aud: DEV_AUDIENCE, iss: DEV_ISSUER, iat: now };
    const tokens: Record<string, string> = {
      "no exp": await signWithDevKey(claims),
      "exp in ten years": await signWithDevKey({ ...claims, exp: now + 10 * 365 * 86400 }),
      "an hour more than max_lifetime": await signWithDevKey({ ...claims, exp: now + DEFAULT_JWT_MAX_LIFETIME_SECONDS + 3600 }),
    };
    const before = await cacheCounters(stack.envoy);
    for (const [what, token] of Object.entries(tokens)) {
      ledger.token(token);
      const answer = await exchange(stack.envoy, { token, region: REGION });
      try {
        expectContractError(answer, 401, "AuthenticationError");
        expectNotVictims(answer);
      } catch (error) {
        throw new Error(`JWT-SVID with ${what}: ${(error as Error).message}`);
      }
    }
    expect(delta(before, await cacheCounters(stack.envoy)).hits).toEqual({ L1: 0, L2: 0, L3: 0 });

    // The same claims with a lifetime inside the bound are served: the key is warm in L1.
    const bounded = ledger.token(await signWithDevKey({ ...claims, exp: now + DEFAULT_JWT_MAX_LIFETIME_SECONDS - 3600 }));
    expectCredential(await exchange(stack.envoy, { token: bounded, region: REGION }), "L1", VICTIM);
  });
});

// ---- the mTLS listener's trust domains, and connection lifetime -------------------------------

x509.cryptoProvider.set(crypto);
const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

interface Ca {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

function pem(label: string, der: ArrayBuffer): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der).toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

/** A CA of its own for `trustDomain`, as SPIRE's would be (its SAN names the trust domain). */
async function newCa(trustDomain: string): Promise<{ ca: Ca; bundle: string }> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${trustDomain} CA`,
    keys,
    notBefore: new Date(Date.now() - 300_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const bundle = path.join(scratch, `${trustDomain}-ca.pem`);
  writeFileSync(bundle, cert.toString("pem") + "\n");
  return { ca: { cert, keys }, bundle };
}

/** The dev CA (trust domain hexr.local), whose key the test reads as only a stolen-CA attacker could. */
async function devCa(): Promise<Ca> {
  const cert = new x509.X509Certificate(readFileSync(stack.identity.ca, "utf8"));
  const body = readFileSync(stack.identity.caKey, "utf8").replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const privateKey = await crypto.subtle.importKey("pkcs8", Buffer.from(body, "base64"), EC_KEY, true, ["sign"]);
  const publicKey = await cert.publicKey.export(EC_KEY, ["verify"], crypto);
  return { cert, keys: { privateKey, publicKey } };
}

/** An X.509-SVID for `spiffeId` (a URI SAN; "dns:NAME" for a DNS SAN instead) signed by `ca`, whatever trust domain either belongs to. */
async function svidFrom(ca: Ca, spiffeId: string, name: string): Promise<{ cert: string; key: string }> {
  const san = spiffeId.startsWith("dns:") ? { type: "dns" as const, value: spiffeId.slice(4) } : { type: "url" as const, value: spiffeId };
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${name}`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    notBefore: new Date(Date.now() - 300_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([san]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  const files = { cert: path.join(scratch, `${name}.pem`), key: path.join(scratch, `${name}-key.pem`) };
  writeFileSync(files.cert, cert.toString("pem") + "\n");
  writeFileSync(files.key, pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)), { mode: 0o600 });
  return files;
}

const HANDSHAKE_FAILURE = /socket hang up|ECONNRESET|alert|certificate/i;

describe("the mTLS listener", () => {
  /** A second sidecar that trusts two trust domains, each with its own CA, and keeps mTLS connections 2 s at most. */
  let twoDomains: EnvoySidecar;
  let caA: Ca;
  let caB: Ca;

  beforeAll(async () => {
    caA = await devCa();
    const b = await newCa(TD_B);
    caB = b.ca;
    const [agent, agentMtls, metadata, stats] = [await freePort(), await freePort(), await freePort(), await freePort()];
    twoDomains = createEnvoySidecar({
      name: "two-domains",
      runDir: stack.runDir,
      concurrency: 1,
      values: {
        ...nativeSidecarValues({
          sidecarPorts: { agent, agentMtls, metadata, stats },
          ports: stack.ports,
          identity: stack.identity,
          wasmPath: defaultWasmPath,
          filterConfiguration: loadFilterConfiguration(),
        }),
        identity: {
          ...devSidecarIdentity(stack.identity),
          trustDomains: [
            { name: DEV_TRUST_DOMAIN, bundle: stack.identity.ca },
            { name: TD_B, bundle: b.bundle },
          ],
        },
        mtlsMaxConnectionSeconds: 2,
      },
    });
    await twoDomains.start();
  });

  afterAll(async () => {
    await twoDomains?.stop();
    if (twoDomains) expect(ledger.leaks({ "envoy-two-domains": twoDomains.logs(), "envoy-two-domains-access": twoDomains.accessLog() })).toEqual([]);
  });

  const post = (sidecar: EnvoySidecar, tls: { cert: string; key: string }, token?: string) =>
    exchange(sidecar, { listener: "mtls", tls: { ...tls, ca: stack.identity.ca }, token, region: REGION });

  it("refuses a certificate for another trust domain signed by this trust domain's CA (the shipped sidecar trusts hexr.local only)", async () => {
    const foreign = await svidFrom(caA, B_AGENT, "b-agent-by-a");
    await expect(post(stack.envoy, foreign)).rejects.toThrow(HANDSHAKE_FAILURE);
    // The listener is up: this trust domain's own SVID is served.
    expectCredential(await post(stack.envoy, await issueX509Svid(VICTIM)), "L1", VICTIM);
  });

  it("with two trust domains, checks each certificate against its own domain's CA only", async () => {
    // B's CA cannot mint the victim's identity in hexr.local, nor A's CA one in B.
    await expect(post(twoDomains, await svidFrom(caB, VICTIM, "victim-by-b"), victimToken)).rejects.toThrow(HANDSHAKE_FAILURE);
    await expect(post(twoDomains, await svidFrom(caA, B_AGENT, "b-agent-by-a-2"))).rejects.toThrow(HANDSHAKE_FAILURE);
    // A client certificate with no SPIFFE ID at all, from a trusted CA.
    await expect(post(twoDomains, await svidFrom(caA, "dns:localhost", "no-spiffe-id"))).rejects.toThrow(HANDSHAKE_FAILURE);

    // B's own SVID passes the handshake; the filter, which serves hexr.local only, then refuses it.
    const fromB = await post(twoDomains, await svidFrom(caB, B_AGENT, "b-agent-by-b"));
    expect(fromB.status, summary(fromB)).toBeGreaterThanOrEqual(400);
    expect(fromB.status, summary(fromB)).toBeLessThan(500);
    expectNotVictims(fromB);
    // And A's own SVID gets the victim's credential, as the victim (from L2, or L3 with its JWT-SVID).
    const fromA = await post(twoDomains, await issueX509Svid(VICTIM), victimToken);
    expect({ status: fromA.status, spiffeId: fromA.json?.spiffe_id }, summary(fromA)).toEqual({ status: 200, spiffeId: VICTIM });
    ledger.credentials(fromA.json);
  });

  it("closes a connection once max_connection_duration has passed (2 s here; the shipped 1 h is checked as config data)", async () => {
    const svid = await issueX509Svid(OTHER);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const opened = Date.now();
    const closed = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        `${twoDomains.agentMtlsUrl}/not-a-door`,
        { agent, cert: readFileSync(svid.cert), key: readFileSync(svid.key), ca: readFileSync(stack.identity.ca), servername: "localhost" },
        (response) => {
          response.resume();
          response.on("end", () => {
            expect(response.statusCode).toBe(404);
            expect(response.headers.connection).not.toBe("close");
          });
        },
      );
      req.on("socket", (socket) => socket.once("close", () => resolve(Date.now() - opened)));
      req.on("error", reject);
      req.end();
    });
    agent.destroy();
    // Envoy drains at 2 s and closes the idle connection after drain_timeout (5 s) and its 1-s
    // delayed close: about 8 s. Without max_connection_duration only the idle timeout (1 h)
    // would end it, and a connection in use would stay open for good.
    expect(closed).toBeGreaterThanOrEqual(1_900);
    expect(closed).toBeLessThan(10_000);
    await eventually("Envoy counts the connection it closed", async () =>
      ((await twoDomains.stats("^http\\.agent_mtls\\.downstream_cx_max_duration_reached$")).get("http.agent_mtls.downstream_cx_max_duration_reached") ?? 0) >= 1,
    );
  });
});

// ---- the access log ------------------------------------------------------------------------------

describe("the access log", () => {
  it("carries the SPIFFE ID, service, region and tier of every credential answer, and never a token or credential", async () => {
    const l1 = await exchange(stack.envoy, { token: victimToken, region: REGION });
    expectCredential(l1, "L1", VICTIM);
    const otherToken = ledger.token(await mintJwtSvid(OTHER));
    const l3 = await exchange(stack.envoy, { token: otherToken, region: "eu-west-1" });
    ledger.credentials(expectCredential(l3, "L3", OTHER));

    // Envoy writes the file every --file-flush-interval-msec (10 s by default); reopening flushes it.
    const exchanges = () => accessLines(stack.envoy).filter((line) => line.path === "/exchange");
    await stack.envoy.admin("/reopen_logs", "POST");
    await eventually("the L3 answer's access log line", async () => exchanges().some((line) => line.spiffe_id === OTHER), 15_000);
    const lines = exchanges();
    expect(lines.find((line) => line.spiffe_id === OTHER)).toMatchObject({ status: 200, service: "aws_s3", region: "eu-west-1", tier: "L3" });
    expect(lines.filter((line) => line.tier === "L1").at(-1)).toMatchObject({ status: 200, spiffe_id: VICTIM, service: "aws_s3", region: REGION });
    // Every credential answer names its identity, service, region and tier.
    const answered = lines.filter((line) => line.status === 200);
    expect(answered.length).toBeGreaterThanOrEqual(5);
    for (const line of answered) {
      expect(line.spiffe_id).toMatch(/^spiffe:\/\/hexr\.local\/agent\//);
      expect(line.service).toBe("aws_s3");
      expect(line.tier).toMatch(/^L[123]$/);
    }
    // The tokens refused above (no exp, exp in ten years, past max_lifetime) all claimed the victim's sub:
    // their lines name nobody, since the filter never learnt a verified identity.
    const refused = lines.filter((line) => line.status === 401);
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const line of refused) expect({ spiffe_id: line.spiffe_id, tier: line.tier }).toEqual({ spiffe_id: null, tier: null });

    const log = stack.envoy.accessLog();
    expect(ledger.leaks({ access: log })).toEqual([]);
    expect(log).not.toMatch(/eyJ|AccessKeyId|SecretAccessKey|SessionToken|authorization/i);
  });
});

describe("logs", () => {
  it("contain no credential or token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
