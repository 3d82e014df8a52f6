// The scenarios of the comparison, each one a target Envoy plus the request wrk sends to it, and
// what has to be true before each run (a warm L1 key, enough fresh keys in L2).
import { exchangeRequest, exchangeSpec, KeySequence, SECRET_NAME, SECRET_VALUE, secretPut, secretReadSpec, WARM_REGION } from "./agent.ts";
import { PASS_THROUGH_PATH } from "./envoys.ts";
import { sendAll } from "./fill.ts";
import type { L2Pool } from "./l2-pool.ts";
import type { Measurement, RunKind } from "./measure.ts";
import type { RequestSpec, WrkResult } from "./wrk.ts";

export type ScenarioId =
  | "floor" | "floor-jwt" | "wasm-floor" | "pass-through-plain" | "pass-through-shipped" | "pass-through-ignored" | "l1-hit"
  | "l2-hit" | "l3-miss" | "no-filter" | `${DoorName}-l1-hit` | `${DoorName}-wasm-floor` | "secret-read" | "llm-direct" | "llm-route";

/** The stock-SDK doors measured (README "Stock SDKs"): a GET each, without body. */
export type DoorName = "aws" | "gce";

export type Tier = "L1" | "L2" | "L3";

export interface Target {
  url: string;
  /** The Envoy's admin socket: its counters are read there (stack/envoy.ts adminRequest). */
  adminSocket: string;
  pid: number;
  /** The stat prefix of the listener the requests go to (its accepted connections are checked); default agent_http. */
  statPrefix?: string;
}

export interface RunShape {
  connections: number;
  seconds: number;
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** One line for the results table. */
  what: string;
  target: Target;
  /** Every answer must come from this tier (checked on the filter's counters after each run). */
  tier?: Tier;
  /** Puts in place what the run needs; returns the request to send. */
  prepare(run: RunShape): Promise<RequestSpec>;
  /** Told what the run generated (key families advance past every key it used). */
  finish?(result: WrkResult): void;
  /** Run before each round's runs of every scenario, followed by an unmeasured warm-up run. */
  beforeRound?(): Promise<void>;
  /** Connections of its throughput runs, when not the plan's (the LLM scenarios, bench/llm.ts). */
  throughputConnections?: number;
  /**
   * Measures one run itself, in place of bench/measure.ts: a target that is no Envoy (the LLM
   * provider emulator), or a run that checks more (bench/llm.ts).
   */
  measure?(options: { kind: RunKind; round: number; run: RunShape; workDir: string }): Promise<Measurement>;
}

/** A plain GET an agent process sends through its sidecar to some other service. */
const PASS_THROUGH_REQUEST: RequestSpec = { method: "GET", path: PASS_THROUGH_PATH, headers: {} };

/**
 * The three floors the L1 hit is compared with: direct_response (the physical limit of the
 * listener), direct_response after the sidecar's jwt_authn (the authenticated floor), and the
 * sidecar with the smallest wasm module that answers the same way from the same callback.
 */
export function floorScenarios(token: string, floor: Target, floorJwt: Target, wasmFloor: Target): Scenario[] {
  const request = exchangeSpec(token, WARM_REGION);
  return [
    {
      id: "floor",
      title: "floor (direct_response)",
      what: "the physical limit: same listener and request; buffer + router, direct_response with the credential's body",
      target: floor,
      prepare: async () => request,
    },
    {
      id: "floor-jwt",
      title: "floor + jwt_authn",
      what: "the authenticated floor: the floor after the sidecar's jwt_authn as shipped (verified-token cache included)",
      target: floorJwt,
      prepare: async () => request,
    },
    {
      id: "wasm-floor",
      title: "wasm floor",
      what:
        "the sidecar with bench/wasm-floor/ in place of the filter: answers the L1 hit's body and headers from the request-body callback " +
        "and does nothing else (what any proxy-wasm filter pays)",
      target: wasmFloor,
      prepare: async () => request,
    },
  ];
}

/**
 * A GET on a path the filter never serves, through the sidecar as shipped (`shippedRunsWasm`: whether
 * its routes call the wasm filter for that path), with the wasm filter enabled on the route (the
 * filter is called and ignores it), and without the wasm filter.
 */
export function passThroughScenarios(plain: Target, shipped: Target, ignored: Target, shippedRunsWasm: boolean): Scenario[] {
  return [
    {
      id: "pass-through-plain",
      title: "pass-through, no wasm",
      what: "GET on a non-exchange path to a trivial upstream, the sidecar's chain without the wasm filter",
      target: plain,
      prepare: async () => PASS_THROUGH_REQUEST,
    },
    {
      id: "pass-through-shipped",
      title: "pass-through, as shipped",
      what:
        "the same GET through the sidecar's chain and routes as shipped " +
        (shippedRunsWasm ? "(the wasm filter runs on this route)" : "(the wasm filter is disabled on this route)"),
      target: shipped,
      prepare: async () => PASS_THROUGH_REQUEST,
    },
    {
      id: "pass-through-ignored",
      title: "pass-through, ignored by filter",
      what: "the same, with the wasm filter enabled on the route: the filter is called and ignores the request",
      target: ignored,
      prepare: async () => PASS_THROUGH_REQUEST,
    },
  ];
}

/** L1 hit: one key, asked for again before every run so that it is warm (and still servable). */
export function l1HitScenario(token: string, sidecar: Target): Scenario {
  return {
    id: "l1-hit",
    title: "L1 hit",
    what: "/exchange, key warm in L1 (proxy shared data)",
    target: sidecar,
    tier: "L1",
    async prepare() {
      await sendAll({ baseUrl: sidecar.url, count: 1, request: () => exchangeRequest(token, WARM_REGION), expectStatus: 200 });
      return exchangeSpec(token, WARM_REGION);
    },
  };
}

/**
 * L2 hit: every request asks for a key that is in L2 and was never asked of this sidecar, so each
 * one misses L1 and is served from L2 (and, as in production, fills L1 on the way). The pool is
 * topped up before each run with 1.5 × the keys the fastest run so far would have used.
 * Each such request adds a key to what the filter's VM remembers having stored, and a VM holding
 * tens of thousands of keys costs more on every request (see the L1 growth phase), so the sidecar
 * is restarted before every round (`restart`): each round starts as a pod that holds a few keys.
 */
export function l2HitScenario(token: string, sidecar: Target, pool: L2Pool, restart: () => Promise<void>): Scenario {
  const fastest = new Map<number, number>();
  return {
    id: "l2-hit",
    title: "L2 hit",
    what: "/exchange, L1 miss (a key this Envoy never saw), warm in L2 (Valkey via the bridge)",
    target: sidecar,
    tier: "L2",
    async prepare(run) {
      const expectedRps = fastest.get(run.connections) ?? 8000;
      const start = pool.keys.position;
      await pool.ensure(start + Math.ceil(expectedRps * run.seconds * 1.5) + 4 * run.connections);
      return exchangeSpec(token, "@KEY@", { prefix: pool.keys.prefix, start, count: 0 });
    },
    finish(result) {
      pool.keys.advance(result.generated);
      fastest.set(result.connections, Math.max(fastest.get(result.connections) ?? 0, result.rps));
    },
    beforeRound: restart,
  };
}

/** L3 miss: a region never asked for before on every request: L1 miss, L2 miss, injector, OPA, STS. */
export function l3MissScenario(token: string, sidecar: Target, keys: KeySequence): Scenario {
  return {
    id: "l3-miss",
    title: "L3 miss",
    what: "/exchange, a new key every request: L1 miss, L2 miss, injector + OPA + STS (moto)",
    target: sidecar,
    tier: "L3",
    prepare: async () => exchangeSpec(token, "@KEY@", { prefix: keys.prefix, start: keys.position, count: 0 }),
    finish: (result) => keys.advance(result.generated),
  };
}

export function noFilterScenario(token: string, target: Target): Scenario {
  return {
    id: "no-filter",
    title: "no filter",
    what: "the same request routed by Envoy (jwt_authn + router) straight to the injector: nothing cached",
    target,
    prepare: async () => exchangeSpec(token, WARM_REGION),
  };
}

/**
 * Secret read: GET /v1/secrets/{name} through the sidecar's vault door for one agent-level secret,
 * put once before the first run. The vault caches nothing: every request goes jwt_authn, the
 * filter's vault door, Envoy → vault (mTLS), and the vault verifies the JWT-SVID again, reads and
 * decrypts the secret from SQLite and appends an audit record before it answers.
 */
export function secretReadScenario(token: string, sidecar: Target): Scenario {
  let stored: Promise<void> | undefined;
  return {
    id: "secret-read",
    title: "secret read (vault)",
    what:
      `GET /v1/secrets/${SECRET_NAME} through the vault door, one agent-level secret of ${Buffer.byteLength(SECRET_VALUE)} B: ` +
      "sidecar → vault (mTLS) → SQLite on every request, nothing cached",
    target: sidecar,
    async prepare() {
      stored ??= sendAll({ baseUrl: sidecar.url, count: 1, request: () => secretPut(token, SECRET_NAME, SECRET_VALUE), expectStatus: 201 });
      await stored;
      return secretReadSpec(token, SECRET_NAME);
    },
  };
}

/**
 * A stock-SDK door's L1 hit, and its wasm floor: the same Envoy setup for the same GET with the
 * filter replaced by bench/wasm-floor/, which answers the door's own L1 answer from the same
 * callback (the request headers: a GET has no body). For the AWS door both go through the
 * sidecar's jwt_authn (provider jwt_svid_token_file on that path), for the GCE door through none
 * (the metadata listener has no jwt_authn: its identity is static).
 */
export function doorScenarios(door: DoorName, request: RequestSpec, sidecar: Target, floor: Target): Scenario[] {
  const { title, hit, floorWhat } = DOORS[door];
  const warm = { method: request.method, path: request.path, headers: request.headers };
  return [
    {
      id: `${door}-l1-hit`,
      title: `${title} L1 hit`,
      what: `${hit}, key warm in L1: answered in the request-headers callback`,
      target: sidecar,
      tier: "L1",
      // Asked for again before every run, as the L1 hit's key: warm, and refreshed if it must be.
      async prepare() {
        await sendAll({ baseUrl: sidecar.url, count: 1, request: () => warm, expectStatus: 200 });
        return request;
      },
    },
    {
      id: `${door}-wasm-floor`,
      title: `${title} wasm floor`,
      what: `${floorWhat}, with bench/wasm-floor/ in place of the filter: answers the door's L1 body and headers from the request-headers callback`,
      target: floor,
      prepare: async () => request,
    },
  ];
}

export const DOORS: Record<DoorName, { title: string; hit: string; floorWhat: string }> = {
  aws: {
    title: "AWS door",
    hit: "GET /v1/aws/credentials as the AWS SDKs send it (the JWT-SVID as Authorization, no scheme)",
    floorWhat: "the sidecar's agent listener unchanged (jwt_authn verifies the same token, provider jwt_svid_token_file)",
  },
  gce: {
    title: "GCE door",
    hit: "GET …/service-accounts/default/token with Metadata-Flavor: Google on the metadata listener (static identity, no JWT)",
    floorWhat: "the sidecar's metadata listener unchanged (no jwt_authn)",
  },
};
