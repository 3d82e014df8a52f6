// What the benchmark sends: the agent's exchange request (with a region chosen per cache key),
// and, for L2, entries in the exact format the filter itself writes there.
//
// Distinct cache keys come from the region: the key is cred:{spiffe-id}:{service}:{region}, the
// benchmark's sidecars accept any ^[a-z0-9-]{1,32}$ region (regions.aws "any" in bench/main.ts),
// the injector passes it through, and the dev OPA policy restricts no region for acme-corp. One agent identity (DEMO_AGENT_ID, allowed aws_s3)
// is enough: a key's cost does not depend on which identity it belongs to.
import type { Outgoing } from "./fill.ts";
import type { RequestSpec } from "./wrk.ts";

export const SERVICE = "aws_s3";

/** The region of the one key the L1-hit scenario asks for (warm in L1 before every run). */
export const WARM_REGION = "bench-warm";

/** Prefixes of the key families; each family's numbers are handed out once (KeySequence). */
export const KEY_PREFIX = {
  /** L3 misses: a region never asked for before. */
  miss: "miss-",
  /** The L2-hit scenario: put into L2 beforehand, asked for once each. */
  l2: "l2-",
  /** The memory and growth phase: put into L2, then loaded into L1 of its own sidecar. */
  growth: "grow-",
} as const;

export function exchangeBody(region: string, service = SERVICE): string {
  return JSON.stringify({ service, region });
}

/** POST /exchange exactly as the Hexr SDK sends it; region "@KEY@" is varied by wrk. */
export function exchangeSpec(token: string, region: string, keys?: RequestSpec["keys"]): RequestSpec {
  return {
    method: "POST",
    path: "/exchange",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: exchangeBody(region),
    keys,
  };
}

/**
 * GET on the AWS container-credentials door (`path`: AWS_CONTAINER_CREDENTIALS_FULL_URI's) as
 * every AWS SDK sends it: the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, the JWT-SVID,
 * as the Authorization header with no scheme; no body.
 */
export function awsDoorSpec(token: string, path: string): RequestSpec {
  return { method: "GET", path, headers: { authorization: token } };
}

/** The default service account's token on the GCE metadata door, as google-auth asks for it. */
export const GCE_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token";

/** GET of that token: no credential at all (the metadata listener serves its one identity), no body. */
export function gceDoorSpec(): RequestSpec {
  return { method: "GET", path: GCE_TOKEN_PATH, headers: { "metadata-flavor": "Google" } };
}

/** The one secret the secret-read scenario reads: agent-level, put through the sidecar before the first run. */
export const SECRET_NAME = "BENCH_API_KEY";

/** Its value: 64 bytes, the size of a typical API key. */
export const SECRET_VALUE = `sk-${"0123456789abcdef".repeat(4).slice(3)}`;

/** GET /v1/secrets/{name} on the sidecar's vault door: the JWT-SVID as a bearer token, as for /exchange; no body. */
export function secretReadSpec(token: string, name: string): RequestSpec {
  return { method: "GET", path: `/v1/secrets/${name}`, headers: { authorization: `Bearer ${token}` } };
}

/** PUT /v1/secrets/{name}: a new version of an agent-level secret (no scope). */
export function secretPut(token: string, name: string, value: string): Outgoing {
  return {
    method: "PUT",
    path: `/v1/secrets/${name}`,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ value }),
  };
}

export function exchangeRequest(token: string, region: string, service = SERVICE): Outgoing {
  const spec = exchangeSpec(token, region);
  return { method: spec.method, path: spec.path, headers: spec.headers, body: exchangeBody(region, service) };
}

export function cacheKey(spiffeId: string, region: string): string {
  return `cred:${spiffeId}:${SERVICE}:${region}`;
}

/**
 * An L2 value as the filter writes it ("{expires_at}\n{body}"), made from a real injector answer
 * with its region and expiry replaced. The expiry is chosen by the benchmark so that entries stay
 * servable for the whole run (moto's credentials last 15 minutes, 10 of which are the refresh
 * buffer); the filter reads only the number before the newline.
 */
export function l2Value(credentialBody: string, region: string, expiresAt: number): Buffer {
  const body = JSON.parse(credentialBody);
  body.region = region;
  body.expires_at = expiresAt;
  body.expiration = new Date(expiresAt * 1000).toISOString().replace(".000Z", "Z");
  return Buffer.from(`${expiresAt}\n${JSON.stringify(body)}`);
}

/** PUT /v1/cred/{key} on the bridge: the filter's own write-through request. */
export function bridgePut(key: string, value: Buffer, ttlMs: number): Outgoing {
  return {
    method: "PUT",
    path: `/v1/cred/${encodeURIComponent(key)}?ttl_ms=${ttlMs}`,
    headers: { "content-type": "application/octet-stream" },
    body: value,
  };
}

/** Numbers for one key family, each handed out once. */
export class KeySequence {
  private next = 0;

  constructor(readonly prefix: string) {}

  /** The first number of the next unused range, without using it. */
  get position(): number {
    return this.next;
  }

  /** Marks `count` numbers from the current position as used. */
  advance(count: number): void {
    this.next += count;
  }

  region(n: number): string {
    return `${this.prefix}${n}`;
  }
}

/** The LLM scenarios' agent: granted llm_openai:gpt-4o by the dev policy (policy/data.json), as in e2e/llm.test.ts. */
export const LLM_AGENT_ID = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher";

/** The vault secret the injector reads the OpenAI key from (contract llm.providers.openai.key_secret). */
export const LLM_KEY_SECRET = "OPENAI_API_KEY";

/** The LLM scenarios' chat completion: a fixed prompt, streamed, with the usage chunk asked for. */
export const LLM_CHAT_BODY = JSON.stringify({
  model: "gpt-4o",
  messages: [{ role: "user", content: "In one short paragraph, say what a sidecar proxy does for the agent next to it." }],
  stream: true,
  stream_options: { include_usage: true },
});

/** POST of that body to `path` (the provider's own, or the sidecar's LLM route), with `authorization`. */
export function llmChatSpec(path: string, authorization: string): RequestSpec {
  return { method: "POST", path, headers: { "content-type": "application/json", authorization }, body: LLM_CHAT_BODY };
}
