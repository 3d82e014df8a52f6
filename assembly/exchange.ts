// One POST /exchange, top to bottom, as in ARCHITECTURE.md:
//   1. validate the envelope, resolve the caller's verified SPIFFE ID, strip client x-hexr-* headers
//   2. parse the body, apply the local allow-list
//   3. key = cred:{spiffe-id}:{service}:{region}
//   4. L1 (shared data)         hit → local reply
//   5. L2 (bridge HTTP call)    hit → fill L1, local reply
//   6. L3 continue upstream to the injector with SVID-derived headers; on its 200 fill L1 and L2
import { isAllowedLocally } from "./allowlist";
import { cacheKey, CacheEntry, decodeEntry, encodeEntry, isServable, parseEpochSeconds } from "./cache/entry";
import { lookupL1, storeL1 } from "./cache/l1";
import { l2GetRequest, l2PutRequest } from "./cache/l2";
import { FilterConfig } from "./config";
import { badRequest, credentialError, ErrorType, Rejection, unauthenticated, upstreamFailure } from "./errors";
import { Identity, identitySourceName, resolveIdentity } from "./identity";
import { JsonKind, parseJson } from "./json";
import { Metrics, Tier, tierName } from "./metrics";
import { HttpContext } from "./proxy-wasm/context";
import {
  continueStream, getBuffer, getHeader, getHeaderNames, Header, nowNanoseconds, removeHeader,
  replaceHeader, sendLocalResponse,
} from "./proxy-wasm/host";
import { Action, BufferType, MapType, StreamType } from "./proxy-wasm/types";
import { ExchangeRequest, parseExchangeRequest } from "./request";
import { ExchangeRoot } from "./root";

const enum Stage { PassThrough, AwaitingBody, AwaitingL2, Forwarded, ReceivingCredential, Done }

/** The injector's reply is small; anything much larger is passed on but not cached. */
const MAX_CACHEABLE_BODY: u32 = 65536;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MILLISECOND: u64 = 1_000_000;

export class ExchangeStream extends HttpContext {
  private stage: Stage = Stage.PassThrough;
  private startedAt: u64 = 0;
  private identity: Identity | null = null;
  private request: ExchangeRequest | null = null;
  private key: string = "";
  private upstreamExpiresAt: i64 = 0;

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
    this.stage = Stage.AwaitingBody;
    return Action.Pause;
  }

  // ---- 2–5. request body ----

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (this.stage != Stage.AwaitingBody) return this.stage == Stage.Done ? Action.Pause : Action.Continue;
    if (bodySize > <u32>this.exchange.config.maxBodyBytes) return this.reject(bodyTooLarge());
    if (!endOfStream) return Action.Pause;
    return this.handleBody(bodySize);
  }

  onRequestTrailers(numTrailers: u32): Action {
    if (this.stage != Stage.AwaitingBody) return this.stage == Stage.Done ? Action.Pause : Action.Continue;
    return this.handleBody(<u32>this.exchange.config.maxBodyBytes + 1);
  }

  private handleBody(bodySize: u32): Action {
    const config = this.exchange.config;
    const body = bodySize > 0 ? getBuffer(BufferType.HttpRequestBody, 0, bodySize) : null;
    if (body !== null && body.byteLength > config.maxBodyBytes) return this.reject(bodyTooLarge());
    const parsed = parseExchangeRequest(body !== null ? body : new ArrayBuffer(0), config);
    if (parsed.rejection !== null) return this.reject(parsed.rejection!);
    const request = parsed.request!;
    const identity = this.identity!;
    if (!isAllowedLocally(config, identity.spiffe, request.service)) {
      return this.reject(credentialError(403, "the service is not in this agent's resources"));
    }
    this.request = request;
    this.key = cacheKey(identity.spiffe.uri, request.service, request.region);
    const metrics = this.exchange.metrics!;
    metrics.invocation(request.service);

    const cached = lookupL1(this.key, nowSeconds(), config.refreshBufferSeconds);
    if (cached !== null) {
      metrics.hit(Tier.L1);
      return this.replyFromCache(cached, Tier.L1);
    }
    metrics.miss(Tier.L1);
    if (this.askL2()) {
      this.stage = Stage.AwaitingL2;
      return Action.Pause;
    }
    return this.forwardToInjector();
  }

  // ---- 5. L2 ----

  private askL2(): bool {
    const l2 = this.exchange.config.l2;
    if (l2 === null) return false;
    const token = this.dispatchHttpCall(l2.cluster, l2GetRequest(l2, this.key), null, l2.timeoutMs);
    if (token == 0) this.exchange.metrics!.miss(Tier.L2);
    return token != 0;
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    if (this.stage != Stage.AwaitingL2) return;
    const metrics = this.exchange.metrics!;
    const value = readL2Value(numHeaders, bodySize);
    const entry = value !== null ? decodeEntry(value) : null;
    if (entry !== null && isServable(entry.expiresAt, nowSeconds(), this.exchange.config.refreshBufferSeconds)) {
      metrics.hit(Tier.L2);
      storeL1(this.key, Uint8Array.wrap(value!), entry.expiresAt);
      this.replyFromCache(entry, Tier.L2);
      return;
    }
    metrics.miss(Tier.L2);
    if (this.forwardToInjector() == Action.Continue) continueStream(StreamType.HttpRequest);
  }

  // ---- 6. L3 ----

  private forwardToInjector(): Action {
    const identity = this.identity!;
    const request = this.request!;
    const spiffe = identity.spiffe;
    const map = MapType.HttpRequestHeaders;
    replaceHeader(map, "x-hexr-spiffe-id", spiffe.uri);
    replaceHeader(map, "x-hexr-tenant", spiffe.tenant);
    replaceHeader(map, "x-hexr-agent", spiffe.agent);
    replaceHeader(map, "x-hexr-role", spiffe.role);
    replaceHeader(map, "x-hexr-identity-source", identitySourceName(identity.source));
    replaceHeader(map, "x-hexr-service", request.service);
    replaceHeader(map, "x-hexr-region", request.region);
    this.stage = Stage.Forwarded;
    return Action.Continue;
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    if (this.stage != Stage.Forwarded) return Action.Continue;
    const status = getHeader(MapType.HttpResponseHeaders, ":status");
    if (status == "200") {
      this.exchange.metrics!.hit(Tier.L3);
      replaceHeader(MapType.HttpResponseHeaders, "x-hexr-cache", "L3");
      const expires = getHeader(MapType.HttpResponseHeaders, "x-hexr-expires-at");
      this.upstreamExpiresAt = expires !== null ? parseEpochSeconds(expires) : 0;
      this.stage = endOfStream ? Stage.Done : Stage.ReceivingCredential;
      if (endOfStream) this.recordDuration();
      return Action.Continue;
    }
    this.exchange.metrics!.miss(Tier.L3);
    this.stage = Stage.Done;
    if (isJsonContentType(getHeader(MapType.HttpResponseHeaders, "content-type"))) {
      this.recordDuration(); // the injector's own error, already in the contract
      return Action.Continue;
    }
    return this.reject(upstreamFailure(parseStatus(status)));
  }

  onResponseBody(bodySize: u32, endOfStream: bool): Action {
    if (this.stage != Stage.ReceivingCredential) return Action.Continue;
    if (bodySize > MAX_CACHEABLE_BODY) {
      this.stage = Stage.Done;
      return Action.Continue;
    }
    if (!endOfStream) return Action.Pause;
    this.stage = Stage.Done;
    const body = getBuffer(BufferType.HttpResponseBody, 0, bodySize);
    if (body !== null) this.cacheCredential(Uint8Array.wrap(body));
    this.recordDuration();
    return Action.Continue;
  }

  /** Fills L1 and writes through to L2 without holding the reply; unusable expiry → not cached. */
  private cacheCredential(body: Uint8Array): void {
    const expiresAt = this.upstreamExpiresAt > 0 ? this.upstreamExpiresAt : expiresAtInBody(body);
    const now = nowSeconds();
    const config = this.exchange.config;
    if (expiresAt == 0 || !isServable(expiresAt, now, config.refreshBufferSeconds)) return;
    const entry = encodeEntry(expiresAt, body);
    storeL1(this.key, entry, expiresAt);
    const l2 = config.l2;
    if (l2 !== null) this.exchange.dispatchHttpCall(l2.cluster, l2PutRequest(l2, this.key, expiresAt, now), entry, l2.timeoutMs);
  }

  // ---- replies ----

  private replyFromCache(entry: CacheEntry, tier: Tier): Action {
    sendLocalResponse(200, "hexr_cache_hit", entry.body, [
      new Header("content-type", "application/json"),
      new Header("x-hexr-cache", tierName(tier)),
      new Header("x-hexr-expires-at", entry.expiresAt.toString()),
    ]);
    this.stage = Stage.Done;
    this.recordDuration();
    return Action.Pause;
  }

  private reject(rejection: Rejection): Action {
    const headers = [new Header("content-type", "application/json")];
    if (rejection.status == 405) headers.push(new Header("allow", "POST"));
    sendLocalResponse(rejection.status, "hexr_exchange_rejected", rejection.body(), headers);
    this.stage = Stage.Done;
    this.recordDuration();
    return Action.Pause;
  }

  private recordDuration(): void {
    this.exchange.metrics!.recordDuration((nowNanoseconds() - this.startedAt) / NANOS_PER_MILLISECOND);
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

/** Only headers Envoy or this filter derived from verified identity may carry the x-hexr- prefix. */
function removeClientHexrHeaders(): void {
  const names = getHeaderNames(MapType.HttpRequestHeaders);
  for (let i = 0; i < names.length; i++) {
    if (startsWithIgnoringCase(names[i], "x-hexr-")) removeHeader(MapType.HttpRequestHeaders, names[i]);
  }
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

function readL2Value(numHeaders: u32, bodySize: u32): ArrayBuffer | null {
  if (numHeaders == 0 || bodySize == 0) return null; // failed or timed out
  if (getHeader(MapType.HttpCallResponseHeaders, ":status") != "200") return null;
  return getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
}

function expiresAtInBody(body: Uint8Array): i64 {
  const parsed = parseJson(String.UTF8.decode(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)));
  const root = parsed.value;
  if (root === null) return 0;
  const expiresAt = root.member("expires_at");
  if (expiresAt === null || !expiresAt.isInteger() || expiresAt.number <= 0) return 0;
  return <i64>expiresAt.number;
}
