// The credential path of the SDK: POST {sidecar}/exchange with the process's JWT-SVID, behind an
// in-process L1 cache.
//
// L1: per identity (the JWT-SVID's SPIFFE ID), per (service, region); an entry is answered from
// memory while now < expires_at - refreshBufferSeconds (600 s). Bounded: at most
// maxEntriesPerIdentity keys per identity and maxIdentities identities, least recently used first
// out. Concurrent resolutions of one key share one exchange. Time is read only through Date.now(),
// so tests advance it with vi.useFakeTimers({ toFake: ["Date"] }) + vi.setSystemTime().
import http from "node:http";
import https from "node:https";
import { CredentialError, HexrError, errorFromAnswer } from "./errors.ts";
import { HEADERS } from "./contract.ts";
import { defaultRegion, isRegion, isServedRegion, isServiceName, providerOf, type Provider } from "./grammar.ts";
import { identityFromEnvironment, type JwtSvid, type JwtSvidSource } from "./identity.ts";
import { instrumented } from "./telemetry.ts";

export const DEFAULT_SIDECAR_URL = "http://127.0.0.1:15080";
export const DEFAULT_REFRESH_BUFFER_SECONDS = 600;

export interface AwsCredentialSet {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
}

export interface TokenCredentialSet {
  access_token: string;
  token_type: string;
}

/** The sidecar's answer to POST /exchange. */
export interface ExchangeAnswer {
  service: string;
  provider: Provider;
  region: string;
  spiffe_id: string;
  credentials: AwsCredentialSet | TokenCredentialSet;
  expiration: string;
  expires_at: number;
}

export interface Resolved {
  readonly answer: ExchangeAnswer;
  /** "L1" (in-process) or the sidecar's x-hexr-cache. */
  readonly cacheTier: string;
  readonly source: "process" | "sidecar";
}

export interface HexrClientOptions {
  /** HEXR_SIDECAR_URL, default http://127.0.0.1:15080. */
  sidecarUrl?: string;
  /** Default: identityFromEnvironment() (Workload API, then HEXR_JWT_SVID_FILE). */
  identity?: JwtSvidSource;
  refreshBufferSeconds?: number;
  maxEntriesPerIdentity?: number;
  maxIdentities?: number;
  timeoutMs?: number;
}

/** What the sidecar answered: status, headers (lower-case names) and the body as text. */
export interface SidecarAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Entry {
  readonly answer: ExchangeAnswer;
  readonly freshUntilMs: number;
}

export class HexrClient {
  readonly sidecarUrl: URL;
  private readonly identitySource: Promise<JwtSvidSource>;
  private readonly refreshBufferMs: number;
  private readonly maxEntriesPerIdentity: number;
  private readonly maxIdentities: number;
  private readonly timeoutMs: number;
  /** identity → key → entry; Maps keep insertion order, re-inserted on use (LRU). */
  private readonly l1 = new Map<string, Map<string, Entry>>();
  private readonly inflight = new Map<string, Promise<Resolved>>();
  private readonly agent: http.Agent;
  /** Exchanges sent to the sidecar by this client (tests and the benchmark read it). */
  exchanges = 0;

  constructor(options: HexrClientOptions = {}) {
    this.sidecarUrl = new URL(options.sidecarUrl ?? process.env.HEXR_SIDECAR_URL ?? DEFAULT_SIDECAR_URL);
    this.identitySource = options.identity ? Promise.resolve(options.identity) : identityFromEnvironment();
    this.refreshBufferMs = (options.refreshBufferSeconds ?? DEFAULT_REFRESH_BUFFER_SECONDS) * 1000;
    this.maxEntriesPerIdentity = options.maxEntriesPerIdentity ?? 256;
    this.maxIdentities = options.maxIdentities ?? 64;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const Agent = this.sidecarUrl.protocol === "https:" ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 16 });
  }

  /** The SPIFFE ID the process holds now (its JWT-SVID's sub). */
  async spiffeId(): Promise<string> {
    return (await (await this.identitySource).fetchJwtSvid()).spiffeId;
  }

  /**
   * A credential for `service` in `region` (default: the provider's default region), from L1 or
   * the sidecar, inside a hexr.tool.invoke span.
   */
  resolve(service: string, region?: string): Promise<Resolved> {
    const chosen = checkRequest(service, region);
    return instrumented(service, chosen, () => this.resolveUninstrumented(service, chosen));
  }

  private async resolveUninstrumented(service: string, region: string): Promise<Resolved> {
    const svid = await (await this.identitySource).fetchJwtSvid();
    const key = `${service}:${region}`;
    const entries = this.l1.get(svid.spiffeId);
    const entry = entries?.get(key);
    if (entry) {
      if (Date.now() < entry.freshUntilMs) return { answer: entry.answer, cacheTier: "L1", source: "process" };
      entries!.delete(key);
    }
    const flightKey = `${svid.spiffeId}\n${key}`;
    let flight = this.inflight.get(flightKey);
    if (!flight) {
      flight = this.exchange(svid.token, svid.spiffeId, service, region).finally(() => this.inflight.delete(flightKey));
      this.inflight.set(flightKey, flight);
    }
    return flight;
  }

  private async exchange(token: string, spiffeId: string, service: string, region: string): Promise<Resolved> {
    this.exchanges++;
    const { status, headers, body } = await this.post(token, service, region);
    if (status !== 200) throw errorFromAnswer(status, body, { service, region });
    let answer: ExchangeAnswer;
    try {
      answer = JSON.parse(body) as ExchangeAnswer;
    } catch {
      throw new CredentialError("the sidecar's answer is not JSON", { status: 502, service, region });
    }
    if (!answer || typeof answer !== "object" || !answer.credentials || typeof answer.expires_at !== "number") {
      throw new CredentialError("the sidecar's answer has no credentials or expires_at", { status: 502, service, region });
    }
    if (answer.spiffe_id !== spiffeId || answer.service !== service || answer.region !== region) {
      // Never keep or use a credential for another identity, service or region.
      throw new CredentialError("the sidecar answered for another identity, service or region", { status: 502, service, region });
    }
    const tier = String(headers[HEADERS.cache] ?? "L3");
    this.store(spiffeId, `${service}:${region}`, answer);
    return { answer, cacheTier: tier, source: "sidecar" };
  }

  private store(spiffeId: string, key: string, answer: ExchangeAnswer): void {
    const freshUntilMs = answer.expires_at * 1000 - this.refreshBufferMs;
    if (Date.now() >= freshUntilMs) return; // answered, but not worth keeping
    let entries = this.l1.get(spiffeId);
    if (entries) {
      this.l1.delete(spiffeId); // most recently used identity last
    } else {
      entries = new Map();
      while (this.l1.size >= this.maxIdentities) this.l1.delete(this.l1.keys().next().value!);
    }
    this.l1.set(spiffeId, entries);
    entries.delete(key);
    while (entries.size >= this.maxEntriesPerIdentity) entries.delete(entries.keys().next().value!);
    entries.set(key, { answer, freshUntilMs });
  }

  /** How many credentials L1 holds (all identities), for tests. */
  get cachedEntries(): number {
    let n = 0;
    for (const entries of this.l1.values()) n += entries.size;
    return n;
  }

  /** Forgets every cached credential. */
  clear(): void {
    this.l1.clear();
  }

  private post(token: string, service: string, region: string): Promise<SidecarAnswer> {
    return this.request(token, "POST", "exchange", JSON.stringify({ service, region }), { service, region });
  }

  /** The JWT-SVID this client presents now (its identity source's). */
  async jwtSvid(): Promise<JwtSvid> {
    return (await this.identitySource).fetchJwtSvid();
  }

  /**
   * One request to the sidecar: `{sidecarUrl}/{path}` (relative, may carry a query) with `token`
   * as `Authorization: Bearer` and, if given, a JSON body, on this client's kept-alive agent.
   * The credential exchange and the vault (vault.ts) both go through here. Transport failures are
   * CredentialError 503 (504 for a timeout), carrying `where` (and never a header of the request).
   */
  request(token: string, method: string, path: string, body?: string, where: { service?: string; region?: string } = {}): Promise<SidecarAnswer> {
    const url = new URL(path, this.sidecarUrl.href.endsWith("/") ? this.sidecarUrl : this.sidecarUrl.href + "/");
    const transport = url.protocol === "https:" ? https : http;
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${token}` };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method, agent: this.agent, timeout: this.timeoutMs, headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", () => reject(new CredentialError("the sidecar's answer was cut off", { status: 503, ...where })));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString("utf8") }));
      });
      request.on("timeout", () => request.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      request.on("error", (error: NodeJS.ErrnoException) => {
        // The error code only: a transport error never carries the request's headers.
        const status = error.code === "ETIMEDOUT" ? 504 : 503;
        reject(new CredentialError(`the sidecar at ${this.sidecarUrl.origin} cannot be reached (${error.code ?? "error"})`, { status, ...where }));
      });
      request.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
    void this.identitySource.then((source) => source.close?.());
  }
}

/** Validates a request as the sidecar would; returns the region to ask for. */
export function checkRequest(service: string, region?: string): string {
  if (!isServiceName(service)) throw new HexrError(`'${service.slice(0, 64)}' is not a service name ({aws|gcp|azure}_{name})`, { type: "BadRequest", status: 400 });
  const provider = providerOf(service);
  const chosen = region ?? defaultRegion(provider);
  if (!isRegion(chosen)) throw new HexrError("the region must match ^[a-z0-9-]{1,32}$", { type: "BadRequest", status: 400, service });
  if (!isServedRegion(provider, chosen)) {
    throw new HexrError(`${provider} does not serve the region ${chosen}`, { type: "BadRequest", status: 400, service, region: chosen });
  }
  return chosen;
}

let defaultClient: HexrClient | undefined;

/** The process's client, built from the environment on first use. */
export function hexrClient(): HexrClient {
  defaultClient ??= new HexrClient();
  return defaultClient;
}

/** Replaces the process's client (tests, or an application that configures the SDK in code). */
export function configure(options: HexrClientOptions | HexrClient): HexrClient {
  defaultClient?.close();
  defaultClient = options instanceof HexrClient ? options : new HexrClient(options);
  return defaultClient;
}

