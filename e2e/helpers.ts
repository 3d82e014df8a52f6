// What the end-to-end tests share: an HTTP client that can do anything a hostile agent can
// (any header, mTLS with any certificate), the exchange call, the sidecar's cache counters, and a
// ledger of every secret the run handled so no log may contain one.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { expect } from "vitest";
import type { EnvoySidecar, Stack } from "../stack/index.ts";

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

export interface RequestOptions {
  method?: string;
  /** Header pairs sent as given, repeated names included. */
  headers?: [string, string][];
  body?: string;
  /** TLS: the CA to trust, and for mTLS the client certificate and key: PEM files, or PEM contents. */
  tls?: { cert?: string | Buffer; key?: string | Buffer; ca: string | Buffer };
  timeoutMs?: number;
  /** A keep-alive agent to reuse connections (load loops); default one connection per request. */
  agent?: http.Agent;
}

const pem = (fileOrContents: string | Buffer): Buffer => (typeof fileOrContents === "string" ? readFileSync(fileOrContents) : fileOrContents);

export function request(url: string, options: RequestOptions = {}): Promise<HttpAnswer> {
  const target = new URL(url);
  const given = options.headers ?? [];
  const has = (name: string) => given.some(([header]) => header.toLowerCase() === name);
  // Raw header arrays are sent exactly as given: Node adds no Host header of its own to them.
  const rawHeaders = [...(has("host") ? [] : ["host", target.host]), ...given.flat()];
  const chunked = has("transfer-encoding");
  if (options.body !== undefined && !has("content-length") && !chunked) {
    rawHeaders.push("content-length", String(Buffer.byteLength(options.body)));
  }
  const common = {
    method: options.method ?? "GET",
    host: target.hostname,
    port: target.port,
    path: target.pathname + target.search,
    headers: rawHeaders,
    agent: options.agent ?? (false as const),
    timeout: options.timeoutMs ?? 15_000,
  };
  return new Promise((resolve, reject) => {
    const onResponse = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
      });
    };
    const req =
      target.protocol === "https:"
        ? https.request(
            {
              ...common,
              cert: options.tls?.cert ? pem(options.tls.cert) : undefined,
              key: options.tls?.key ? pem(options.tls.key) : undefined,
              ca: options.tls ? pem(options.tls.ca) : undefined,
              servername: "localhost",
            },
            onResponse,
          )
        : http.request(common, onResponse);
    req.on("timeout", () => req.destroy(new Error(`${common.method} ${url} timed out`)));
    req.on("error", reject);
    if (chunked && options.body) {
      // Several chunks, as a streaming client sends them.
      for (let at = 0; at < options.body.length; at += 1024) req.write(options.body.slice(at, at + 1024));
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

export interface ExchangeOptions {
  service?: string;
  region?: string;
  /** A JWT-SVID sent as Authorization: Bearer. */
  token?: string;
  /** Extra headers (spoofing attempts). */
  headers?: [string, string][];
  /** Raw body instead of {"service", "region"}. */
  body?: string;
  tls?: RequestOptions["tls"];
  /** Which listener: the plain one (default) or the mTLS one. */
  listener?: "http" | "mtls";
  agent?: http.Agent;
  timeoutMs?: number;
}

/** POST /exchange exactly as the Hexr SDK does. */
export function exchange(sidecar: EnvoySidecar, options: ExchangeOptions = {}): Promise<HttpAnswer> {
  const body = options.body ?? JSON.stringify({ service: options.service ?? "aws_s3", ...(options.region ? { region: options.region } : {}) });
  const headers: [string, string][] = [["content-type", "application/json"]];
  if (options.token) headers.push(["authorization", `Bearer ${options.token}`]);
  headers.push(...(options.headers ?? []));
  const base = options.listener === "mtls" ? sidecar.agentMtlsUrl : sidecar.agentUrl;
  return request(`${base}/exchange`, { method: "POST", headers, body, tls: options.tls, agent: options.agent, timeoutMs: options.timeoutMs });
}

/**
 * What a failed assertion may print about an answer: never its body, which may hold a credential
 * (test output ends up in CI logs too).
 */
export function summary(answer: HttpAnswer): string {
  const error = answer.json?.error;
  const body = error ? `${error.type}: ${error.message}` : answer.json ? `JSON with ${Object.keys(answer.json).join(", ")}` : `${answer.text.length} bytes`;
  return `${answer.status} (x-hexr-cache ${answer.headers["x-hexr-cache"] ?? "none"}) ${body}`;
}

/** Two answers carry the same body, byte for byte (compared without printing either). */
export function expectSameBody(answer: HttpAnswer, original: HttpAnswer): void {
  expect(answer.text === original.text, `${summary(answer)} differs from ${summary(original)}`).toBe(true);
}

/** The contract's JSON error: status, type, content type, and no credential material in it. */
export function expectContractError(answer: HttpAnswer, status: number, type: string): void {
  expect({ status: answer.status, type: answer.json?.error?.type }, summary(answer)).toEqual({ status, type });
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  expect(typeof answer.json.error.message).toBe("string");
  expect(/AccessKeyId|SecretAccessKey|SessionToken|access_token|eyJ/.test(answer.text), "credential material in an error").toBe(false);
  expect(answer.headers["x-hexr-cache"]).toBeUndefined();
}

export interface AwsCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
}

/** A 200 from the given tier, for the given identity; returns its parsed body. */
export function expectCredential(answer: HttpAnswer, tier: "L1" | "L2" | "L3", spiffeId: string): { credentials: AwsCredentials; [key: string]: any } {
  expect({ status: answer.status, tier: answer.headers["x-hexr-cache"] }, summary(answer)).toEqual({ status: 200, tier });
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  expect(answer.json.spiffe_id).toBe(spiffeId);
  expect(answer.headers["x-hexr-expires-at"]).toBe(String(answer.json.expires_at));
  return answer.json;
}

export const TIERS = ["L1", "L2", "L3"] as const;

export interface CacheCounters {
  hits: Record<(typeof TIERS)[number], number>;
  misses: Record<"L1" | "L2", number>;
  invocations: (service: string) => number;
}

/**
 * The filter hands its counters to Envoy on its tick (metrics_flush_ms: 250 in the local stack's
 * envoy/exchange-filter.json): a read waits that long, so it sees every request already answered.
 */
const METRICS_FLUSH_WAIT_MS = 300;

/**
 * The filter's own metrics, as Envoy exposes them on admin /stats (prefix wasmcustom.), read over
 * the admin's Unix socket (EnvoySidecar.stats); no TCP port serves the admin.
 */
export async function cacheCounters(sidecar: EnvoySidecar): Promise<CacheCounters> {
  await sleep(METRICS_FLUSH_WAIT_MS);
  const stats = await sidecar.stats("^wasmcustom\\.");
  const read = (name: string) => {
    const value = stats.get(`wasmcustom.${name}`);
    if (value === undefined) throw new Error(`wasmcustom.${name} is not in admin /stats: ${[...stats.keys()].join(", ")}`);
    return value;
  };
  return {
    hits: { L1: read("hexr_cache_hits.tier.L1"), L2: read("hexr_cache_hits.tier.L2"), L3: read("hexr_cache_hits.tier.L3") },
    misses: { L1: read("hexr_cache_misses.tier.L1"), L2: read("hexr_cache_misses.tier.L2") },
    invocations: (service) => read(`hexr_tool_invocations.service.${service}`),
  };
}

/** Counter changes between two readings. */
export function delta(before: CacheCounters, after: CacheCounters) {
  return {
    hits: { L1: after.hits.L1 - before.hits.L1, L2: after.hits.L2 - before.hits.L2, L3: after.hits.L3 - before.hits.L3 },
    misses: { L1: after.misses.L1 - before.misses.L1, L2: after.misses.L2 - before.misses.L2 },
  };
}

/**
 * Every token and credential value a test file handled; at the end, none may appear in any log of
 * the stack (Envoy's log and access log, every service's output).
 */
export class SecretLedger {
  /** Shorter strings (an empty signature, a word of a garbage token) would match by chance. */
  private static readonly MIN_LENGTH = 16;
  private readonly secrets = new Set<string>();

  private add(value: unknown): void {
    if (typeof value === "string" && value.length >= SecretLedger.MIN_LENGTH) this.secrets.add(value);
  }

  token(token: string): string {
    this.add(token);
    // A token's signature is as secret as the token: it must not appear on its own either.
    this.add(token.split(".")[2]);
    return token;
  }

  /** A secret's value (Hexr Vault). */
  value(secret: string): string {
    this.add(secret);
    return secret;
  }

  /** Every credential value of an exchange answer (AWS keys, or GCP/Azure access tokens). */
  credentials(body: { credentials?: object } | undefined): void {
    for (const value of Object.values(body?.credentials ?? {})) this.add(value);
  }

  get size(): number {
    return this.secrets.size;
  }

  /**
   * leaks() for logs too long to search once per secret (the soak run's): every word of the logs
   * (and every dot-separated part of one, for token signatures) is looked up in the ledger. A secret
   * run together with other characters of a word is not found; the tests use leaks().
   */
  leaksByWord(logs: Record<string, string>): string[] {
    const found = new Set<string>();
    for (const [name, text] of Object.entries(logs)) {
      for (const word of text.split(/[^A-Za-z0-9+/=._-]+/)) {
        if (word.length < SecretLedger.MIN_LENGTH) continue;
        if (this.secrets.has(word) || word.split(".").some((part) => this.secrets.has(part))) {
          found.add(`${name} contains a secret of ${word.length} characters`);
        }
      }
    }
    return [...found];
  }

  /** Names of the logs that contain a secret, with the kind of secret (never the secret itself). */
  leaks(logs: Record<string, string>): string[] {
    const found: string[] = [];
    for (const [name, text] of Object.entries(logs)) {
      for (const secret of this.secrets) {
        if (text.includes(secret)) found.push(`${name} contains a secret of ${secret.length} characters`);
      }
    }
    return found;
  }
}

/**
 * The final check of every stack-based test file. It stops the sidecars first: Envoy flushes its
 * access log on exit, so every line the run produced is searched.
 */
export async function expectNoSecretsInLogs(stack: Stack, ledger: SecretLedger, extra: Record<string, string> = {}): Promise<void> {
  for (const sidecar of stack.sidecars) await sidecar.stop();
  const logs = { ...stack.logs(), ...extra };
  expect(ledger.size).toBeGreaterThan(0);
  // The logs being searched are real: Envoy logged the requests the file made.
  for (const sidecar of stack.sidecars) expect(sidecar.accessLog()).toMatch(/"path":"\/(exchange|v1\/)/);
  expect(ledger.leaks(logs)).toEqual([]);
}

/** One line of a sidecar's access log (envoy/sidecar.yaml's json_format): no field can hold a secret. */
export interface AccessLine {
  path: string;
  status: string | number;
  spiffe_id: string | null;
  service: string | null;
  region: string | null;
  tier: string | null;
  [field: string]: unknown;
}

/** The complete lines of the access log: Envoy may be writing the last one as it is read. */
export function accessLines(sidecar: EnvoySidecar): AccessLine[] {
  const lines = sidecar.accessLog().split("\n");
  lines.pop(); // after the last newline: "" or a line still being written
  return lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as AccessLine);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what}: not true within ${timeoutMs} ms`);
}

/** The injector's one structured log line per exchange (injector/exchange-service.ts); never a secret in it. */
export interface InjectorExchangeLine {
  spiffe_id?: string;
  service?: string;
  region?: string;
  status: number;
  outcome?: string;
  error?: string;
  latency_ms?: number;
}

/** Every exchange the injector logged, over all of its runs in this stack. */
export function injectorExchangeLines(stack: Stack): InjectorExchangeLine[] {
  const lines: InjectorExchangeLine[] = [];
  for (const line of stack.parts.injector.logs().split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: { msg?: string } & InjectorExchangeLine;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // a line cut by a kill
    }
    if (entry.msg === "exchange") lines.push(entry);
  }
  return lines;
}

/** Exchanges the injector answered with `status` (default 200), optionally for one identity and/or region. */
export function injectorExchanges(stack: Stack, filter: { spiffeId?: string; region?: string; status?: number } = {}): number {
  const status = filter.status ?? 200;
  return injectorExchangeLines(stack).filter(
    (e) => e.status === status && (filter.spiffeId === undefined || e.spiffe_id === filter.spiffeId) && (filter.region === undefined || e.region === filter.region),
  ).length;
}

/** "status tier" → how many answers, e.g. {"200 L1": 998, "200 L3": 1, "503 -": 1}: printable, no secret in it. */
export function tally(answers: readonly { status: number; headers: http.IncomingHttpHeaders }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const key = `${answer.status} ${answer.headers["x-hexr-cache"] ?? "-"}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** One of the filter's counters (admin /stats, wasmcustom.{name}); throws when Envoy does not list it. */
export async function filterMetric(sidecar: EnvoySidecar, name: string): Promise<number> {
  await sleep(METRICS_FLUSH_WAIT_MS);
  const stats = await sidecar.stats(`^wasmcustom\\.${name.replace(/\./g, "\\.")}$`);
  const value = stats.get(`wasmcustom.${name}`);
  if (value === undefined) throw new Error(`wasmcustom.${name} is not in admin /stats`);
  return value;
}

/** Connections each Envoy worker thread accepted on the plain agent listener, by worker index. */
export async function connectionsPerWorker(sidecar: EnvoySidecar): Promise<number[]> {
  const port = new URL(sidecar.agentUrl).port;
  const stats = await sidecar.stats(`^listener\\.127\\.0\\.0\\.1_${port}\\.worker_\\d+\\.downstream_cx_total$`);
  const perWorker: number[] = [];
  for (const [name, value] of stats) perWorker[Number(/worker_(\d+)\./.exec(name)![1])] = value;
  return perWorker;
}
