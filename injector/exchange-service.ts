// One POST /exchange, start to finish: framing → authentication → body → revocations → OPA →
// cloud exchange → the contract's 200 body, or the contract's JSON error. Exactly one log line per
// exchange.
import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import { HEADERS, IDENTITY_SOURCES, credentialKey, type Provider } from "../contract/index.ts";
import type { Authenticator, AuthenticatedRequest } from "./auth/authenticate.ts";
import { callerSpiffeId } from "./auth/caller.ts";
import type { ServiceCatalog } from "./catalog.ts";
import type { InjectorConfig } from "./config.ts";
import { ExchangeError, denied, internalError, notConfigured } from "./errors.ts";
import { singleHeader } from "./headers.ts";
import type { Logger } from "./log.ts";
import type { InjectorMetrics } from "./metrics.ts";
import type { OpaClient } from "./opa.ts";
import type { CloudExchange, IssuedCredentials } from "./providers/provider.ts";
import type { RevocationCheck } from "./revocations.ts";
import { checkFraming, parseTarget, readBody, type ExchangeTarget } from "./request.ts";

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface ExchangeDependencies {
  config: InjectorConfig;
  catalog: ServiceCatalog;
  authenticator: Authenticator;
  opa: OpaClient;
  /** The deny-list of revoked identities (NO_REVOCATIONS without a revocation section). */
  revocations: RevocationCheck;
  exchanges: ReadonlyMap<Provider, CloudExchange>;
  logger: Logger;
  /** Prometheus counters and histograms (injector/metrics.ts); absent: none. */
  metrics?: InjectorMetrics;
}

/** Fields of the exchange log line; none of them can hold a token or a credential. */
interface ExchangeLog {
  spiffe_id?: string;
  caller?: string;
  identity_source?: string;
  service?: string;
  provider?: string;
  region?: string;
  decision: "allow" | "deny" | "error" | "not_reached";
  scopes?: string[];
  outcome: string;
  status: number;
  latency_ms: number;
  error?: string;
}

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

export class ExchangeService {
  constructor(private readonly deps: ExchangeDependencies) {}

  async handle(request: IncomingMessage): Promise<Reply> {
    const started = performance.now();
    // Keys listed up front so every line reads in the same order; undefined ones are left out.
    const log: ExchangeLog = {
      spiffe_id: undefined, service: undefined, region: undefined, decision: "not_reached", outcome: "issued", status: 200, latency_ms: 0,
    };
    let reply: Reply;
    try {
      reply = await this.exchange(request, log);
    } catch (error) {
      reply = this.failure(error, log);
    }
    log.latency_ms = Math.round((performance.now() - started) * 100) / 100;
    this.deps.logger[log.status >= 500 ? "warn" : "info"](log, "exchange");
    this.deps.metrics?.exchange(log);
    return reply;
  }

  private async exchange(request: IncomingMessage, log: ExchangeLog): Promise<Reply> {
    const { config, catalog, authenticator } = this.deps;
    checkFraming(request, config.max_body_bytes);
    const body = await readBody(request, config.max_body_bytes);
    // Who connected and how the filter says it resolved the identity: logged even when refused.
    log.caller = callerSpiffeId(request.socket);
    log.identity_source = identitySource(request);
    const authenticated = await authenticator.authenticate(request.headers, log.caller);
    log.spiffe_id = authenticated.identity.spiffeId;

    const target = parseTarget(body, request.headers, catalog, config.default_regions, config.regions);
    Object.assign(log, { service: target.service, provider: target.provider, region: target.region });
    // Before OPA and before any cloud call: a revoked identity gets nothing minted for it.
    this.deps.revocations.check(credentialKey(authenticated.identity.spiffeId, target.service, target.region));
    const scopes = await this.authorize(authenticated, target, log);
    const issued = await this.exchangeFor(authenticated, target, scopes);
    return success(authenticated, target, issued);
  }

  private async authorize(authenticated: AuthenticatedRequest, target: ExchangeTarget, log: ExchangeLog): Promise<string[]> {
    const { identity } = authenticated;
    log.decision = "error";
    const ask = () => this.deps.opa.decide({
      spiffe_id: identity.spiffeId,
      tenant: identity.tenant,
      agent: identity.agent,
      role: identity.role,
      service: target.service,
      region: target.region,
      revoked_prefixes: this.deps.revocations.prefixes(),
    });
    const decision = await (this.deps.metrics ? this.deps.metrics.opa(ask) : ask());
    log.decision = decision.allow ? "allow" : "deny";
    log.scopes = decision.scopes;
    if (!decision.allow) throw denied(`policy denied: ${decision.reasons.join("; ") || "no grant"}`);
    return decision.scopes;
  }

  private exchangeFor(authenticated: AuthenticatedRequest, target: ExchangeTarget, scopes: string[]): Promise<IssuedCredentials> {
    const exchange = this.deps.exchanges.get(target.provider);
    if (!exchange) throw notConfigured(`${target.provider} exchanges are not configured on this injector`);
    const request = { identity: authenticated.identity, service: target.service, region: target.region, scopes };
    // The agent's JWT-SVID goes only to an exchange that acts for the agent (the vault re-verifies it).
    return exchange.actsForAgent ? exchange.exchange(request, authenticated.proof) : exchange.exchange(request);
  }

  private failure(error: unknown, log: ExchangeLog): Reply {
    const failure = error instanceof ExchangeError ? error : internalError();
    log.status = failure.status;
    log.outcome = failure.outcome;
    // Our own messages only; an unexpected error is named, not quoted, in case it carries a request.
    log.error = failure === error ? failure.message : `unexpected ${(error as Error)?.name ?? typeof error}`;
    return { status: failure.status, headers: { ...JSON_HEADERS, ...failure.headers }, body: failure.body() };
  }
}

/** How the filter resolved the identity (mtls, jwt or static); anything else is not worth logging. */
function identitySource(request: IncomingMessage): string | undefined {
  const source = singleHeader(request.headers, HEADERS.identity_source);
  return source && (IDENTITY_SOURCES as readonly string[]).includes(source) ? source : undefined;
}

function success(authenticated: AuthenticatedRequest, target: ExchangeTarget, issued: IssuedCredentials): Reply {
  const expiresAt = Math.floor(issued.expiresAt.getTime() / 1000);
  const body = JSON.stringify({
    service: target.service,
    provider: target.provider,
    region: target.region,
    spiffe_id: authenticated.identity.spiffeId,
    credentials: issued.credentials,
    expiration: new Date(expiresAt * 1000).toISOString().replace(".000Z", "Z"),
    expires_at: expiresAt,
  });
  return { status: 200, headers: { ...JSON_HEADERS, [HEADERS.expires_at]: String(expiresAt) }, body };
}
