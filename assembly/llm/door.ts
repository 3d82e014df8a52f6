// The LLM door: one call to a provider through the sidecar, top to bottom.
//   1. headers: POST, JSON, within max_request_bytes; the caller's verified identity (never the
//      listener's own); every key the agent sent is removed
//   2. resolve/: the provider's credential for this identity, L1 → L2 → L3 like any credential
//      (llm_*: an API key the injector reads from the vault in the caller's scope, with the models
//      OPA granted; azure_openai: an Entra token), put in the provider's auth header
//   3. body: the model (Azure: the deployment in the path) allowed by this sidecar and granted to
//      the caller, the caller within its budget, a completions stream made to report its usage;
//      then on to the provider
//   4. the answer streams back untouched while UsageScanner reads its usage; when the stream is
//      over, however it ended, the usage is recorded: ledger row, metrics, budget, one log line.
// Why the credential comes before the body: Envoy lets a filter change request headers only in
// its headers callback or while it holds them there, and a filter that holds them gets no body
// (proxy-wasm-cpp-host turns a paused headers callback into "stop all"). So the headers wait for
// the credential only; the model is checked when the body is complete, which it always is before
// the request leaves: Envoy's buffer filter, after this one on the LLM routes, holds the request
// until then (and sets its content-length, which a stream's usage request may change).
import { HEADER_SERVICE, HEADER_SPIFFE_ID, LLM_MODEL_MAX } from "../contract";
import { fieldAt, fieldSize, findStringFields } from "../doors/credential-answer";
import { CredentialDoor, hasSeveralTokens } from "../doors/credential-door";
import { badRequest, bodyTooLarge, credentialError, ErrorType, invalidContentLength, notJsonMediaType, notJsonObject, Rejection, severalTokens, unauthenticated } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { FilterState } from "../filter/state";
import { providerOf } from "../input/catalog";
import { CredentialRequest } from "../input/credential-request";
import { IdentitySource } from "../input/identity";
import { continueRequest, getHeaderBytes, Header, HeaderPairs, log, removeHeader, replaceBuffer, replaceHeader } from "../proxy-wasm/host";
import { Action, BufferType, LogLevel, MapType } from "../proxy-wasm/types";
import { credentialKey } from "../tiers/keys";
import { allInClass, bytesEqualAt, CharClass, decimal, decimalAt, isJsonMediaTypeAt } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { JsonKind, JsonValue, parseJson } from "../util/json";
import { message } from "../util/message";
import { Budget, LlmConfig, Price } from "./config";
import { LLM_AGENT_KEY_HEADERS, LLM_AUTH_HEADERS, LLM_AUTH_PREFIXES, LLM_KEY_FIELD, LLM_MODELS_FIELD, LLM_PROVIDERS, LLM_SERVICES } from "./contract";
import { budgetExhaustedFor, chargeBudget, recordUsage, rowName } from "./ledger";
import { LlmMetrics } from "./metrics";
import { LlmRoute } from "./route";
import { countsOf, TokenCounts, UsageScanner } from "./usage";

const ANTHROPIC = LLM_PROVIDERS.indexOf("anthropic");
const AZURE_OPENAI = LLM_PROVIDERS.indexOf("azure_openai");

/** What the LLM filter's requests share besides the exchange filter's state. */
export class LlmState {
  constructor(readonly config: LlmConfig, readonly metrics: LlmMetrics) {}
}

export class LlmDoor extends CredentialDoor {
  private agentAuthorization: ArrayBuffer | null = null;
  private model: string = "";
  private streamed: bool = false;
  private budget: Budget | null = null;
  /** serve() may run inside onHeaders (an L1 hit): then onHeaders' own return lets the headers go. */
  private inHeaders: bool = false;
  private hasCredential: bool = false;
  /** The models OPA granted, space-separated; "" for the whole service (and for Azure, whose grants are whole). */
  private grantedModels: string = "";
  private scanner: UsageScanner | null = null;
  private status: i64 = 0;
  private recorded: bool = false;

  constructor(state: FilterState, contextId: u32, private readonly llm: LlmState, private readonly route: LlmRoute) {
    super(state, contextId);
  }

  maxBodyBytes(): i32 {
    return this.llm.config.maxRequestBytes;
  }

  // ---- 1. headers ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!this.llm.config.served[this.route.provider]) return this.reject(new Rejection(404, ErrorType.BadRequest, message("this sidecar does not serve ") + this.route.providerName));
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "POST")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, message("use POST for the LLM route")));
    }
    if (!headers.find("content-type") || !isJsonMediaTypeAt(headers.foundAt, headers.foundSize)) {
      return this.reject(notJsonMediaType());
    }
    if (headers.find("content-length")) {
      const declared = decimalAt(headers.foundAt, headers.foundSize);
      if (declared < 0) return this.reject(invalidContentLength());
      if (declared > <i64>this.maxBodyBytes()) return this.reject(bodyTooLarge());
    }
    if (endOfStream) return this.reject(badRequest(message("the request body is empty")));
    if (hasSeveralTokens(headers)) return this.reject(severalTokens());
    const resolved = this.verifyCaller();
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    if (identity.source == IdentitySource.Static) return this.reject(credentialError(403, message("the LLM route serves a caller's own SVID only")));
    if (identity.source == IdentitySource.Jwt) this.agentAuthorization = headers.value("authorization");
    // The provider gets the sidecar's credential and nothing the agent sent in its place.
    for (let i = 0; i < LLM_AGENT_KEY_HEADERS.length; i++) removeHeader(MapType.HttpRequestHeaders, LLM_AGENT_KEY_HEADERS[i]);
    // The usage is read from the answer as sent: a compressed one would be unreadable (and unbudgeted).
    removeHeader(MapType.HttpRequestHeaders, "accept-encoding");
    removeHeader(MapType.HttpRequestHeaders, "content-length");
    // Not the resources allow-list: that is the agent's declared cloud tools, and an agent calls
    // hexr_llm without declaring it (the seeds' samples). OPA's llm_* grant decides.
    const service = LLM_SERVICES[this.route.provider];
    const region = this.state.config.defaultRegion(providerOf(service));

    // ---- 2. resolve: L1 → L2 → L3 ----
    this.expectsBody = true;
    this.inHeaders = true;
    this.resolve(new CredentialRequest(identity, service, region, credentialKey(identity.spiffe.uri, service, region)));
    this.inHeaders = false;
    return this.hasCredential && !this.isAnswered ? Action.Continue : Action.Pause;
  }

  agentToken(): ArrayBuffer | null {
    return this.agentAuthorization;
  }

  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void {
    const provider = this.route.provider;
    const azure = provider == AZURE_OPENAI;
    if (!findStringFields(body, azure ? ["access_token"] : [LLM_KEY_FIELD, LLM_MODELS_FIELD]) || hasEscape(fieldAt(0), fieldSize(0))) {
      this.refuse(credentialError(502, message("the provider credential is malformed")));
      return;
    }
    // Copied before the header is set: the fields point into static memory the next scan reuses.
    if (!azure) this.grantedModels = String.UTF8.decodeUnsafe(fieldAt(1), <usize>fieldSize(1));
    const credential = String.UTF8.decodeUnsafe(fieldAt(0), <usize>fieldSize(0));
    replaceHeader(MapType.HttpRequestHeaders, LLM_AUTH_HEADERS[provider], LLM_AUTH_PREFIXES[provider] + credential);
    this.hasCredential = true;
    if (!this.inHeaders) continueRequest();
  }

  // ---- 3. body ----

  onBody(body: ArrayBuffer | null): Action {
    this.expectsBody = false;
    // Envoy delivers no body while the headers wait for the credential; should one come anyway
    // (a host that lets bodies through, allow_on_headers_stop_iteration), nothing is granted yet.
    if (!this.hasCredential) return this.reject(credentialError(503, message("the provider credential is not ready")));
    const parsed = body !== null ? parseJson(String.UTF8.decode(body)).value : null;
    if (parsed === null || parsed.kind != JsonKind.Object) return this.reject(notJsonObject());
    const rejection = this.readRequest(parsed);
    if (rejection !== null) return this.reject(rejection);
    if (this.streamed && this.route.isCompletions) {
      const streamOptions = parsed.member("stream_options");
      if (streamOptions === null) {
        askForStreamUsage(body!);
      } else if (streamOptions.kind != JsonKind.Object || !isTrue(streamOptions.member("include_usage"))) {
        return this.reject(badRequest(message("stream_options.include_usage must be true (or stream_options left out): the sidecar attributes usage")));
      }
    }
    const spiffeId = this.identity!.spiffe.uri;
    const budget = this.llm.config.budgetOf(spiffeId);
    if (budget !== null) {
      const retryAfter = budgetExhaustedFor(spiffeId, budget, nowMilliseconds() / 1000);
      if (retryAfter > 0) return this.refuseForBudget(retryAfter);
      this.budget = budget;
    }
    // On to the provider: its answer is read for usage, and recorded once.
    this.forwards = true;
    return Action.Continue;
  }

  /** The model and the stream flag; the model must be served by this sidecar and granted to the caller. */
  private readRequest(request: JsonValue): Rejection | null {
    if (this.route.provider == AZURE_OPENAI) {
      this.model = this.route.deployment;
    } else {
      const model = request.member("model");
      if (model === null || model.kind != JsonKind.String || !isModelName(model.text)) {
        return badRequest(message("model must be a model name (contract.json grammar.llm_model)"));
      }
      this.model = model.text;
    }
    const stream = request.member("stream");
    this.streamed = stream !== null && isTrue(stream);
    const allowed = this.llm.config.models[this.route.provider];
    if (allowed.length > 0 && !allowed.includes(this.model)) {
      return credentialError(403, "model " + this.model + message(" is not served by this sidecar"));
    }
    if (!isGranted(this.model, this.grantedModels)) return credentialError(403, "model " + this.model + message(" is not granted to this identity"));
    return null;
  }

  reject(rejection: Rejection): Action {
    this.llm.metrics.refused();
    const headers = [new Header("content-type", "application/json")];
    if (rejection.status == 405) headers.push(new Header("allow", "POST"));
    return this.reply(rejection.status, "hexr_llm_rejected", rejection.body(), this.addKnownHeaders(headers));
  }

  private refuseForBudget(retryAfterSeconds: i64): Action {
    this.llm.metrics.budgetRefused();
    const rejection = credentialError(429, message("this identity's LLM budget for the current window is spent"));
    const headers = [new Header("content-type", "application/json"), new Header("retry-after", decimal(retryAfterSeconds))];
    return this.reply(429, "hexr_llm_budget", rejection.body(), this.addKnownHeaders(headers));
  }

  // ---- 4. the answer, and its usage ----

  onResponseHeaders(): void {
    // Who spent it, for the sidecar's access log (as on every credential answer); the agent learns only its own ID.
    replaceHeader(MapType.HttpResponseHeaders, HEADER_SPIFFE_ID, this.identity!.spiffe.uri);
    replaceHeader(MapType.HttpResponseHeaders, HEADER_SERVICE, LLM_SERVICES[this.route.provider]);
    const status = getHeaderBytes(MapType.HttpResponseHeaders, ":status");
    this.status = status !== null ? decimalAt(changetype<usize>(status), status.byteLength) : 0;
    const type = getHeaderBytes(MapType.HttpResponseHeaders, "content-type");
    this.scanner = new UsageScanner(type !== null && bytesEqualAt(changetype<usize>(type), min(type.byteLength, 17), "text/event-stream"));
  }

  onResponseChunk(chunk: ArrayBuffer): void {
    const scanner = this.scanner;
    if (scanner !== null) scanner.feed(chunk);
  }

  /** The stream is over: what its answer reported is recorded once, whether or not it was complete. */
  onStreamEnd(): void {
    if (!this.forwards || this.recorded) return;
    this.recorded = true;
    const scanner = this.scanner;
    const usage = scanner !== null ? scanner.usage : null;
    const seen = usage !== null && usage.seen;
    const counts = countsOf(usage !== null ? usage : new UsageScanner(false).usage, this.route.provider == ANTHROPIC);
    const price = this.llm.config.priceOf(this.model);
    const cost = price === null ? 0 : costOf(counts, price);
    const spiffeId = this.identity!.spiffe.uri;
    const provider = this.route.providerName;
    const row = rowName(spiffeId, provider, this.model);
    if (recordUsage(this.llm.config, row, counts, cost)) this.llm.metrics.record(row, provider, this.model, spiffeId, counts, cost);
    const budget = this.budget;
    if (budget !== null) chargeBudget(spiffeId, budget, nowMilliseconds() / 1000, counts, cost);
    if (!seen || (scanner !== null && scanner.unreadable > 0)) this.llm.metrics.unreadable();
    log(LogLevel.Info, "hexr_llm_usage {\"spiffe_id\":\"" + spiffeId + "\",\"provider\":\"" + provider + "\",\"model\":\"" + this.model +
      "\",\"status\":" + decimal(this.status) + ",\"stream\":" + (this.streamed ? "true" : "false") +
      ",\"usage_seen\":" + (seen ? "true" : "false") + ",\"input_tokens\":" + decimal(counts.input) +
      ",\"cached_input_tokens\":" + decimal(counts.cachedInput) + ",\"cache_write_tokens\":" + decimal(counts.cacheWrite) +
      ",\"output_tokens\":" + decimal(counts.output) + ",\"cost_nanousd\":" + decimal(cost) +
      ",\"priced\":" + (price !== null ? "true" : "false") + "}");
  }
}

/**
 * A completions stream reports usage only when asked: the body gains
 * "stream_options":{"include_usage":true} as its first member (the answer then ends with one chunk
 * whose choices are empty, which the providers' own clients expect).
 */
function askForStreamUsage(body: ArrayBuffer): void {
  const base = changetype<usize>(body);
  const size = body.byteLength;
  let open = 0;
  while (open < size && load<u8>(base + <usize>open) != 0x7b) open++;
  const member = String.UTF8.encode("\"stream_options\":{\"include_usage\":true},");
  // The object has a member (the stream flag), so the new member's comma is always followed by one.
  const rest = size - open - 1;
  const updated = new Uint8Array(size + member.byteLength);
  memory.copy(updated.dataStart, base, <usize>(open + 1));
  memory.copy(updated.dataStart + <usize>(open + 1), changetype<usize>(member), <usize>member.byteLength);
  memory.copy(updated.dataStart + <usize>(open + 1 + member.byteLength), base + <usize>(open + 1), <usize>rest);
  replaceBuffer(BufferType.HttpRequestBody, size, updated);
}

/** The most one call may cost, in nano-USD (a billion dollars): far above any real call, far below i64's limit. */
const MAX_CALL_COST: f64 = 1e18;

/** Nano-USD: uncached input, cache reads, cache writes and output, each at its price (computed in f64: counts and prices are bounded, their products not by i64). */
function costOf(counts: TokenCounts, price: Price): i64 {
  const uncached = <f64>(counts.input - counts.cachedInput - counts.cacheWrite);
  const cost = uncached * <f64>price.input + <f64>counts.cachedInput * <f64>price.cachedInput +
    <f64>counts.cacheWrite * <f64>price.cacheWrite + <f64>counts.output * <f64>price.output;
  return <i64>min(cost, MAX_CALL_COST);
}

function isTrue(value: JsonValue | null): bool {
  return value !== null && value.kind == JsonKind.Bool && value.boolean;
}

/** Model names as the providers spell them (contract.json grammar.llm_model): nothing that could break a key, a metric name or a log line. */
function isModelName(model: string): bool {
  return model.length > 0 && model.length <= LLM_MODEL_MAX && allInClass(model, 0, model.length, CharClass.LlmModel);
}

/** Whether `model` is among the space-separated models OPA granted; none listed: the whole service was granted. */
function isGranted(model: string, granted: string): bool {
  if (granted.length == 0) return true;
  const models = granted.split(" ");
  return models.includes(model);
}

function hasEscape(at: usize, size: i32): bool {
  for (let i = 0; i < size; i++) if (load<u8>(at + <usize>i) == 0x5c) return true;
  return false;
}
