// Steady agent load for the fault-injection test (e2e/faults.test.ts) and the soak run (e2e/soak.ts):
// a few agents each asking for their own warm key in a loop, plus one agent asking for a new (cold)
// key each time. Every answer is recorded with when it was asked, its status and tier, and the facts
// needed to judge it — whose credential it carries and until when — but never a credential value
// outside the secret ledger.
import http from "node:http";
import type { EnvoySidecar } from "../stack/index.ts";
import { exchange, sleep, type HttpAnswer, type SecretLedger } from "./helpers.ts";

export interface LoadAgent {
  spiffeId: string;
  token: string;
  /** The region of this agent's warm key (cred:{spiffeId}:aws_s3:{region}). */
  region: string;
}

export type KeyKind = "warm" | "cold";

export interface LoadAnswer {
  kind: KeyKind;
  agent: string;
  region: string;
  sentAtMs: number;
  ms: number;
  /** 0: no HTTP answer at all (connection refused, reset, timed out). */
  status: number;
  /** x-hexr-cache, or "-". */
  tier: string;
  warning?: string;
  /** From a 200's body. */
  spiffeId?: string;
  expiresAt?: number;
  /** Header x-hexr-expires-at as sent. */
  expiresHeader?: string;
  /** Kept to check that no access key reaches two identities; never printed. */
  accessKeyId?: string;
  /** Contract error type, or the transport error. */
  error?: string;
}

export interface LoadOptions {
  sidecar: EnvoySidecar;
  warm: LoadAgent[];
  /** Asks for cred:{spiffeId}:aws_s3:cold-{n}, a new key each time. */
  cold?: Omit<LoadAgent, "region">;
  /** Pause between two requests of one warm agent. */
  warmPeriodMs: number;
  coldPeriodMs: number;
  ledger: SecretLedger;
  /** Hard bound: the loops stop by themselves after this long. */
  maxDurationMs: number;
  /** Per-request client timeout. */
  requestTimeoutMs?: number;
  /** Keep answers in memory (tests); the soak run counts instead and keeps only violations. */
  onAnswer?: (answer: LoadAnswer) => void;
}

export class AgentLoad {
  readonly answers: LoadAnswer[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];
  private coldCounter = 0;

  constructor(private readonly options: LoadOptions) {}

  start(): void {
    this.running = true;
    const deadline = Date.now() + this.options.maxDurationMs;
    for (const agent of this.options.warm) {
      this.loops.push(this.loop("warm", agent, () => agent.region, this.options.warmPeriodMs, deadline));
    }
    const cold = this.options.cold;
    if (cold) {
      this.loops.push(this.loop("cold", { ...cold, region: "" }, () => `cold-${++this.coldCounter}`, this.options.coldPeriodMs, deadline));
    }
  }

  async stop(): Promise<LoadAnswer[]> {
    this.running = false;
    await Promise.all(this.loops);
    for (const agent of this.agents) agent.destroy();
    return this.answers;
  }

  private async loop(kind: KeyKind, agent: LoadAgent, region: () => string, periodMs: number, deadline: number): Promise<void> {
    // One keep-alive connection pool per loop: like an SDK client, and light on 2 shared cores.
    const pool = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.agents.push(pool);
    while (this.running && Date.now() < deadline) {
      const answer = await this.ask(kind, agent, region(), pool);
      if (this.options.onAnswer) this.options.onAnswer(answer);
      else this.answers.push(answer);
      await sleep(periodMs);
    }
  }

  private async ask(kind: KeyKind, agent: LoadAgent, region: string, pool: http.Agent): Promise<LoadAnswer> {
    const sentAtMs = Date.now();
    let answer: HttpAnswer;
    try {
      answer = await exchange(this.options.sidecar, { token: agent.token, region, agent: pool, timeoutMs: this.options.requestTimeoutMs ?? 15_000 });
    } catch (error) {
      return { kind, agent: agent.spiffeId, region, sentAtMs, ms: Date.now() - sentAtMs, status: 0, tier: "-", error: (error as Error).message };
    }
    const recorded: LoadAnswer = {
      kind,
      agent: agent.spiffeId,
      region,
      sentAtMs,
      ms: Date.now() - sentAtMs,
      status: answer.status,
      tier: String(answer.headers["x-hexr-cache"] ?? "-"),
      warning: answer.headers.warning,
      expiresHeader: answer.headers["x-hexr-expires-at"] as string | undefined,
    };
    if (answer.status === 200 && answer.json) {
      this.options.ledger.credentials(answer.json);
      recorded.spiffeId = answer.json.spiffe_id;
      recorded.expiresAt = answer.json.expires_at;
      recorded.accessKeyId = answer.json.credentials?.AccessKeyId;
    } else {
      recorded.error = answer.json?.error ? `${answer.json.error.type}: ${answer.json.error.message}` : `${answer.text.length} bytes, not the contract's JSON`;
    }
    return recorded;
  }
}

const CACHE_TIERS = ["L1", "L2", "L3"];

/**
 * What is wrong with one answer, whatever the circumstances (empty when nothing): a credential for
 * another identity, one served past its buffer (or, stale, past its real expiry), a stale answer
 * without its warning, an error that is not the contract's. Messages carry no secret.
 */
export function violations(answer: LoadAnswer, bufferSeconds: number): string[] {
  const found: string[] = [];
  const where = `${answer.kind} ${answer.agent} ${answer.region} at ${new Date(answer.sentAtMs).toISOString()}`;
  const askedAt = Math.floor(answer.sentAtMs / 1000);
  if (answer.status === 200) {
    if (answer.spiffeId !== answer.agent) found.push(`${where}: a credential for ${answer.spiffeId}`);
    if (typeof answer.expiresAt !== "number" || answer.expiresHeader !== String(answer.expiresAt)) found.push(`${where}: x-hexr-expires-at does not match the body`);
    if (answer.tier === "L1-stale") {
      if (!answer.warning?.startsWith("110 - ")) found.push(`${where}: stale answer without its warning`);
      if (askedAt >= (answer.expiresAt ?? 0)) found.push(`${where}: served past its real expiry`);
    } else if (CACHE_TIERS.includes(answer.tier)) {
      if (askedAt >= (answer.expiresAt ?? 0) - bufferSeconds) found.push(`${where}: ${answer.tier} answer past its refresh buffer`);
    } else {
      found.push(`${where}: 200 with x-hexr-cache ${answer.tier}`);
    }
  } else if (answer.status === 0) {
    found.push(`${where}: no HTTP answer (${answer.error})`);
  } else if (!/^(BadRequest|AuthenticationError|CredentialError): /.test(answer.error ?? "")) {
    found.push(`${where}: ${answer.status} that is not the contract's JSON error (${answer.error})`);
  }
  return found;
}

/** Which identity each access key was served to; reports a key that reaches a second identity. */
export class CredentialOwners {
  private readonly owner = new Map<string, string>();

  /** A violation message (naming identities, never the key) when this answer shares another identity's key. */
  add(answer: LoadAnswer): string | undefined {
    if (!answer.accessKeyId) return undefined;
    const first = this.owner.get(answer.accessKeyId);
    if (first === undefined) this.owner.set(answer.accessKeyId, answer.agent);
    else if (first !== answer.agent) return `one access key served to ${first} and to ${answer.agent}`;
    return undefined;
  }

  get size(): number {
    return this.owner.size;
  }
}

export function sharedCredentials(answers: Iterable<LoadAnswer>): string[] {
  const owners = new CredentialOwners();
  const found: string[] = [];
  for (const answer of answers) {
    const shared = owners.add(answer);
    if (shared) found.push(shared);
  }
  return found;
}

/** "status tier" counts of some answers. */
export function countByTier(answers: Iterable<LoadAnswer>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const key = `${answer.status} ${answer.tier}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
