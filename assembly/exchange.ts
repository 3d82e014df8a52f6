// One POST /exchange, top to bottom, as in ARCHITECTURE.md:
//   1. request headers: validate the envelope, resolve the caller's verified SPIFFE ID,
//      strip client x-hexr-* headers
//   2. request body: parse it, apply the local allow-list; key = cred:{spiffe-id}:{service}:{region}
//   3. L1 (shared data)                    hit → local reply
//   4. L2 (call to the bridge cluster)     hit → fill L1, local reply
//   5. L3 (call to the injector cluster, SVID-derived headers) → fill L1 and L2, local reply
//
// Why L3 is a call and not "continue upstream": Envoy delivers the body to a filter only after
// its headers callback returned Continue, and from then on the request headers can no longer be
// changed. The service and region live in the body, so the filter makes the injector request
// itself, over the same mTLS cluster the router would use. (Envoy's buffer filter, after this one
// on the exchange route, keeps the router from starting an upstream request meanwhile.)
import { isAllowedLocally } from "./allowlist";
import { cacheKey, CacheEntry, decodeEntry, encodeEntry, isServable, parseEpochSeconds } from "./cache/entry";
import { lookupL1, storeL1 } from "./cache/l1";
import { l2GetRequest, l2PutRequest } from "./cache/l2";
import { FilterConfig } from "./config";
import { badRequest, credentialError, ErrorType, Rejection, unauthenticated, upstreamFailure } from "./errors";
import { Identity, identitySourceName, resolveIdentity } from "./identity";
import { JsonKind, parseJson } from "./json";
import { Tier, tierName } from "./metrics";
import { HttpContext } from "./proxy-wasm/context";
import {
  getBuffer, getHeader, getHeaderNames, Header, nowNanoseconds, removeHeader, sendLocalResponse,
} from "./proxy-wasm/host";
import { Action, BufferType, MapType } from "./proxy-wasm/types";
import { ExchangeRequest, parseExchangeRequest } from "./request";
import { ExchangeRoot } from "./root";

const enum Stage { PassThrough, AwaitingBody, AwaitingL2, AwaitingInjector, Done }

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MILLISECOND: u64 = 1_000_000;

export class ExchangeStream extends HttpContext {
  private stage: Stage = Stage.PassThrough;
  private startedAt: u64 = 0;
  private identity: Identity | null = null;
  private authorization: string | null = null;
  private request: ExchangeRequest | null = null;
  private key: string = "";

  constructor(id: u32, private exchange: ExchangeRoot) {
    super(id, exchange);
  }

  // ---- 1. request headers ----

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const path = getHeader(MapType.HttpRequestHeaders, ":path");
    if (path === null || !isExchangePath(path, this.exchange.config.exchangePath)) return Action.Continue;
    this.startedAt = nowNanoseconds();
    removeClientHexrHeaders();

    const rejection = checkEnvelope(this.exchange.config, endOfStream);
    if (rejection !== null) return this.reject(rejection);
    const resolved = resolveIdentity(this.exchange.config);
    if (resolved.identity === null) return this.reject(unauthenticated(resolved.reason));
    this.identity = resolved.identity;
    // jwt_authn verified this token (or left no metadata); the injector re-verifies it and
    // presents it to the cloud's STS, so it travels with the L3 call.
    this.authorization = getHeader(MapType.HttpRequestHeaders, "authorization");
    this.stage = Stage.AwaitingBody;
    return Action.Continue;
  }

  // ---- 2. request body ----

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (this.stage == Stage.PassThrough) return Action.Continue;
    if (this.stage != Stage.AwaitingBody) return Action.Pause;
    if (bodySize > <u32>this.exchange.config.maxBodyBytes) return this.reject(bodyTooLarge());
    if (!endOfStream) return Action.Pause;
    return this.handleBody(bodySize);
  }

  onRequestTrailers(numTrailers: u32): Action {
    if (this.stage == Stage.PassThrough) return Action.Continue;
    if (this.stage != Stage.AwaitingBody) return Action.Pause;
    return this.handleBody(<u32>this.exchange.config.maxBodyBytes + 1);
  }

  private handleBody(bodySize: u32): Action {
    const config = this.exchange.config;
    const body = bodySize > 0 ? getBuffer(BufferType.HttpRequestBody, 0, bodySize) : null;
    if (body !== null && body.byteLength > config.maxBodyBytes) return this.reject(bodyTooLarge());
    const parsed = parseExchangeRequest(body !== null ? body : new ArrayBuffer(0), config);
    if (parsed.rejection !== null) return this.reject(parsed.rejection!);
    const request = parsed.request!;
    const spiffe = this.identity!.spiffe;
    if (!isAllowedLocally(config, spiffe, request.service)) {
      return this.reject(credentialError(403, "the service is not in this agent's resources"));
    }
    this.request = request;
    this.key = cacheKey(spiffe.uri, request.service, request.region);
    const metrics = this.exchange.metrics!;
    metrics.invocation(request.service);

    // ---- 3. L1 ----
    const cached = lookupL1(this.key, nowSeconds(), config.refreshBufferSeconds);
    if (cached !== null) {
      metrics.hit(Tier.L1);
      return this.replyFromCache(cached, Tier.L1);
    }
    metrics.miss(Tier.L1);
    if (!this.askL2()) this.askInjector();
    return Action.Pause;
  }

  // ---- 4. L2 ----

  private askL2(): bool {
    const l2 = this.exchange.config.l2;
    if (l2 === null) return false;
    const token = this.dispatchHttpCall(l2.cluster, l2GetRequest(l2, this.key), null, l2.timeoutMs);
    if (token == 0) {
      this.exchange.metrics!.miss(Tier.L2);
      return false;
    }
    this.stage = Stage.AwaitingL2;
    return true;
  }

  private onL2Answer(numHeaders: u32, bodySize: u32): void {
    const value = readCallBody(numHeaders, bodySize, "200");
    const entry = value !== null ? decodeEntry(value) : null;
    if (entry !== null && isServable(entry.expiresAt, nowSeconds(), this.exchange.config.refreshBufferSeconds)) {
      this.exchange.metrics!.hit(Tier.L2);
      storeL1(this.key, Uint8Array.wrap(value!), entry.expiresAt);
      this.replyFromCache(entry, Tier.L2);
      return;
    }
    // A miss, a timeout, an error or garbage: L2 trouble never fails a request.
    this.exchange.metrics!.miss(Tier.L2);
    this.askInjector();
  }

  // ---- 5. L3 ----

  private askInjector(): void {
    const injector = this.exchange.config.injector;
    const token = this.dispatchHttpCall(
      injector.cluster, this.injectorRequestHeaders(), injectorRequestBody(this.request!), injector.timeoutMs);
    if (token == 0) {
      this.exchange.metrics!.miss(Tier.L3);
      this.reject(credentialError(503, "the credential injector is unavailable"));
      return;
    }
    this.stage = Stage.AwaitingInjector;
  }

  private injectorRequestHeaders(): Header[] {
    const config = this.exchange.config;
    const identity = this.identity!;
    const spiffe = identity.spiffe;
    const request = this.request!;
    const headers: Header[] = [
      new Header(":method", "POST"),
      new Header(":path", config.injectorPath),
      new Header(":authority", config.injector.authority),
      new Header("content-type", "application/json"),
      new Header("x-hexr-spiffe-id", spiffe.uri),
      new Header("x-hexr-tenant", spiffe.tenant),
      new Header("x-hexr-agent", spiffe.agent),
      new Header("x-hexr-role", spiffe.role),
      new Header("x-hexr-identity-source", identitySourceName(identity.source)),
      new Header("x-hexr-service", request.service),
      new Header("x-hexr-region", request.region),
    ];
    const authorization = this.authorization;
    if (authorization !== null) headers.push(new Header("authorization", authorization));
    return headers;
  }

  private onInjectorAnswer(numHeaders: u32, bodySize: u32): void {
    const metrics = this.exchange.metrics!;
    if (numHeaders == 0) {
      metrics.miss(Tier.L3);
      this.reject(credentialError(503, "the credential injector is unavailable"));
      return;
    }
    const status = getHeader(MapType.HttpCallResponseHeaders, ":status");
    const body = bodySize > 0 ? getBuffer(BufferType.HttpCallResponseBody, 0, bodySize) : null;
    if (status != "200" || body === null) {
      metrics.miss(Tier.L3);
      this.reject(injectorRejection(parseStatus(status), body));
      return;
    }
    metrics.hit(Tier.L3);
    const credential = Uint8Array.wrap(body);
    const expiresHeader = getHeader(MapType.HttpCallResponseHeaders, "x-hexr-expires-at");
    const headerExpiry = expiresHeader !== null ? parseEpochSeconds(expiresHeader) : 0;
    const expiresAt = headerExpiry > 0 ? headerExpiry : expiresAtInBody(body);
    this.cacheCredential(credential, expiresAt);
    this.reply(credential, Tier.L3, expiresAt);
  }

  /** Fills L1 and writes through to L2 (nobody waits for that answer); no usable expiry → not cached. */
  private cacheCredential(body: Uint8Array, expiresAt: i64): void {
    const now = nowSeconds();
    const config = this.exchange.config;
    if (expiresAt == 0 || !isServable(expiresAt, now, config.refreshBufferSeconds)) return;
    const entry = encodeEntry(expiresAt, body);
    storeL1(this.key, entry, expiresAt);
    const l2 = config.l2;
    if (l2 !== null) this.exchange.dispatchHttpCall(l2.cluster, l2PutRequest(l2, this.key, expiresAt, now), entry, l2.timeoutMs);
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    if (this.stage == Stage.AwaitingL2) this.onL2Answer(numHeaders, bodySize);
    else if (this.stage == Stage.AwaitingInjector) this.onInjectorAnswer(numHeaders, bodySize);
  }

  // ---- replies ----

  private replyFromCache(entry: CacheEntry, tier: Tier): Action {
    return this.reply(entry.body, tier, entry.expiresAt);
  }

  private reply(body: Uint8Array, tier: Tier, expiresAt: i64): Action {
    const headers = [new Header("content-type", "application/json"), new Header("x-hexr-cache", tierName(tier))];
    if (expiresAt > 0) headers.push(new Header("x-hexr-expires-at", expiresAt.toString()));
    sendLocalResponse(200, "hexr_credential", body, headers);
    return this.finish();
  }

  private reject(rejection: Rejection): Action {
    const headers = [new Header("content-type", "application/json")];
    if (rejection.status == 405) headers.push(new Header("allow", "POST"));
    sendLocalResponse(rejection.status, "hexr_exchange_rejected", rejection.body(), headers);
    return this.finish();
  }

  private finish(): Action {
    this.stage = Stage.Done;
    this.exchange.metrics!.recordDuration((nowNanoseconds() - this.startedAt) / NANOS_PER_MILLISECOND);
    return Action.Pause;
  }
}

// ---- helpers of the flow ----

function nowSeconds(): i64 {
  return <i64>(nowNanoseconds() / NANOS_PER_SECOND);
}

function isExchangePath(path: string, exchangePath: string): bool {
  const query = path.indexOf("?");
  return query < 0 ? path == exchangePath : path.substring(0, query) == exchangePath;
}

/** ASCII-only case folding: header names and media types are ASCII, and the std's Unicode tables are large. */
function startsWithIgnoringCase(text: string, lowercasePrefix: string): bool {
  if (text.length < lowercasePrefix.length) return false;
  for (let i = 0; i < lowercasePrefix.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c != lowercasePrefix.charCodeAt(i)) return false;
  }
  return true;
}

/** Only this filter may speak x-hexr-*: whatever a client sent under that prefix is dropped. */
function removeClientHexrHeaders(): void {
  const names = getHeaderNames(MapType.HttpRequestHeaders);
  for (let i = 0; i < names.length; i++) {
    if (startsWithIgnoringCase(names[i], "x-hexr-")) removeHeader(MapType.HttpRequestHeaders, names[i]);
  }
}

function checkEnvelope(config: FilterConfig, endOfStream: bool): Rejection | null {
  if (getHeader(MapType.HttpRequestHeaders, ":method") != "POST") {
    return new Rejection(405, ErrorType.BadRequest, "use POST for " + config.exchangePath);
  }
  if (!isJsonContentType(getHeader(MapType.HttpRequestHeaders, "content-type"))) {
    return new Rejection(415, ErrorType.BadRequest, "the request body must be application/json");
  }
  const length = getHeader(MapType.HttpRequestHeaders, "content-length");
  if (length !== null) {
    const declared = parseEpochSeconds(length);
    if (declared == 0 && length != "0") return badRequest("invalid content-length");
    if (declared > <i64>config.maxBodyBytes) return bodyTooLarge();
  }
  if (endOfStream) return badRequest("the request body is empty; send {\"service\": ...}");
  return null;
}

function bodyTooLarge(): Rejection {
  return new Rejection(413, ErrorType.BadRequest, "the request body is too large");
}

function isJsonContentType(value: string | null): bool {
  if (value === null) return false;
  const semicolon = value.indexOf(";");
  const mediaType = (semicolon < 0 ? value : value.substring(0, semicolon)).trim();
  return mediaType.length == 16 && startsWithIgnoringCase(mediaType, "application/json");
}

function parseStatus(status: string | null): u32 {
  return status !== null ? <u32>parseEpochSeconds(status) : 502;
}

/** The body of an HTTP call's answer when it has the expected status; null on failure or timeout. */
function readCallBody(numHeaders: u32, bodySize: u32, expectedStatus: string): ArrayBuffer | null {
  if (numHeaders == 0 || bodySize == 0) return null;
  if (getHeader(MapType.HttpCallResponseHeaders, ":status") != expectedStatus) return null;
  return getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
}

/** The validated request, re-encoded: both values are of [a-z0-9_-], so no escaping is needed. */
function injectorRequestBody(request: ExchangeRequest): Uint8Array {
  const json = "{\"service\":\"" + request.service + "\",\"region\":\"" + request.region + "\"}";
  return Uint8Array.wrap(String.UTF8.encode(json));
}

function expiresAtInBody(body: ArrayBuffer): i64 {
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return 0;
  const expiresAt = root.member("expires_at");
  if (expiresAt === null || !expiresAt.isInteger() || expiresAt.number <= 0) return 0;
  return <i64>expiresAt.number;
}

/**
 * The injector's own errors already speak the contract: their type and message are passed on,
 * re-encoded so nothing else in its body can reach the agent. Anything else (Envoy's own 503 when
 * the cluster is down, a 504 on timeout, a proxy's HTML page) is mapped onto the contract.
 */
function injectorRejection(status: u32, body: ArrayBuffer | null): Rejection {
  if (body !== null && status >= 400 && status <= 599) {
    const root = parseJson(String.UTF8.decode(body)).value;
    const error = root !== null ? root.member("error") : null;
    const type = error !== null ? error.member("type") : null;
    const message = error !== null ? error.member("message") : null;
    if (type !== null && message !== null && type.kind == JsonKind.String && message.kind == JsonKind.String) {
      if (type.text == "BadRequest") return new Rejection(status, ErrorType.BadRequest, message.text);
      if (type.text == "AuthenticationError") return new Rejection(status, ErrorType.AuthenticationError, message.text);
      if (type.text == "CredentialError") return new Rejection(status, ErrorType.CredentialError, message.text);
    }
  }
  return upstreamFailure(status);
}
