// The injector's deny-list of revoked identities, learned from the bridge's revocation log (the
// same log every sidecar polls: bridge/README.md, "Revocations"). An admin's revocation purges L1
// and L2; without this, the revoked identity's next miss would simply be exchanged again here.
//
//   - Polls GET {bridge}/v1/revocations?since=E over mTLS with the injector's own X.509-SVID,
//     accepting only a bridge certificate that carries revocation.bridge_spiffe_id. The first poll
//     is since=-1 (learn the epoch), then each answer's epoch is the next `since`. An epoch below
//     ours means the log was reset (Valkey lost it) and a `gap` that some revocations after ours
//     are gone: either way the whole log is read again (since=0), at once.
//   - Every prefix learned is refused for revocation.deny_seconds from the moment it was learned
//     (the longest JWT-SVID lifetime: a token issued before the revocation cannot outlive that).
//   - Fail closed: until the log has been read, and whenever it has not been read for
//     revocation.max_log_staleness_ms, every exchange is refused (503).
//   - With revocation.state_file the list and the epoch survive a restart.
//
// Prefixes are credential-key prefixes (cred:{spiffe-id}:{service}:{region}), as the filter's
// revocation endpoint records them: `cred:{id}:` one identity, `cred:spiffe://{td}/agent/{tenant}/`
// a tenant, `cred:spiffe://` everyone. A key is refused when it starts with a live prefix.
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { PeerCertificate } from "node:tls";
import { KEY_MAX_BYTES } from "../contract/index.ts";
import type { RevocationConfig } from "./config.ts";
import { revocationsUnavailable, revoked } from "./errors.ts";
import type { Logger } from "./log.ts";

/** Only prefixes the bridge itself accepts (bridge/keys.ts): anything else in the log is ignored. */
const PREFIX_START = "cred:spiffe://";
/** Past this many live prefixes the list collapses into one covering everyone (fail closed, bounded). */
export const MAX_REVOKED_PREFIXES = 10_000;
/** The log of 10,000 entries of at most 512 bytes, with room to spare. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** How often the certificate, key and CA files are checked for a rotation. */
const TLS_RELOAD_CHECK_MS = 30_000;
const STATE_VERSION = 1;

/** What the exchange path asks; the no-op version serves an injector without a revocation section. */
export interface RevocationCheck {
  /** Throws 403 if `key` is under a live revoked prefix, 503 if the list is not current. */
  check(key: string): void;
  /** The live prefixes, for OPA's input (input.revoked_prefixes). */
  prefixes(): string[];
}

export const NO_REVOCATIONS: RevocationCheck = {
  check() {},
  prefixes: () => [],
};

interface LogAnswer {
  epoch: number;
  prefixes: string[];
  gap: boolean;
}

export class RevocationFollower implements RevocationCheck {
  /** prefix → epoch ms it was learned; insertion order is learning order (times never decrease). */
  private readonly revoked = new Map<string, number>();
  /** The `since` of the next poll; null before the first answer (then since=-1). */
  private epoch: number | null = null;
  /** Reading the whole log again after a reset or gap: prefixes already known keep their time. */
  private rereading = false;
  private lastReadAt: number | null = null;
  private failing = false;
  private staleLogged = false;
  private agent: https.Agent;
  private tlsStamp: string;
  private tlsCheckedAt: number;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: AbortController | null = null;
  private polling: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly config: RevocationConfig,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.tlsStamp = this.tlsFilesStamp();
    this.agent = this.createAgent();
    this.tlsCheckedAt = clock();
    this.restoreState();
  }

  /** Reads the log once (whatever the outcome), then keeps following it every poll_interval_ms. */
  async start(): Promise<void> {
    await this.poll();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.inFlight?.abort();
    this.agent.destroy();
  }

  check(key: string): void {
    const now = this.clock();
    this.prune(now);
    for (const prefix of this.revoked.keys()) {
      if (key.startsWith(prefix)) throw revoked();
    }
    if (this.lastReadAt === null || now - this.lastReadAt > this.config.max_log_staleness_ms) {
      if (!this.staleLogged) {
        this.staleLogged = true;
        this.logger.warn(
          { last_read_at: this.lastReadAt === null ? null : new Date(this.lastReadAt).toISOString(), max_log_staleness_ms: this.config.max_log_staleness_ms },
          "revocation log not current: exchanges are refused until it is read",
        );
      }
      throw revocationsUnavailable();
    }
  }

  prefixes(): string[] {
    this.prune(this.clock());
    return [...this.revoked.keys()];
  }

  /** Status for tests and operators: never anything secret. */
  status(): { epoch: number | null; lastReadAt: number | null; revoked: { prefix: string; learnedAt: number }[] } {
    this.prune(this.clock());
    return {
      epoch: this.epoch,
      lastReadAt: this.lastReadAt,
      revoked: [...this.revoked].map(([prefix, learnedAt]) => ({ prefix, learnedAt })),
    };
  }

  /** One poll now (or the one under way), for tests; the regular schedule continues after it. */
  async pollNow(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.poll();
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, delayMs);
    this.timer.unref();
  }

  /** At most one poll at a time: a second caller waits for the one under way. */
  private poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.polling ??= this.pollOnce().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const since = this.epoch ?? -1;
    let again = this.config.poll_interval_ms;
    try {
      this.reloadTlsIfChanged();
      const answer = await this.read(since);
      if (this.apply(since, answer)) again = 0;
    } catch (error) {
      if (!this.closed && !this.failing) {
        this.failing = true;
        this.logger.warn({ reason: (error as Error).message, since }, "revocation log unreadable");
      }
    } finally {
      this.inFlight = null;
    }
    this.schedule(again);
  }

  /** Applies one answer; true when the whole log must be read again at once. */
  private apply(since: number, answer: LogAnswer): boolean {
    const now = this.clock();
    if (this.epoch !== null && since > 0 && (answer.epoch < since || answer.gap)) {
      // Valkey lost the log (the epoch went back) or revocations after ours were trimmed: what they
      // revoked is known only from the log itself, so read all of it. Not current until then.
      this.logger.warn({ since, epoch: answer.epoch, gap: answer.gap }, "revocation log reset: reading it again from the start");
      this.epoch = 0;
      this.rereading = true;
      this.saveState();
      return true;
    }
    let changed = this.epoch !== answer.epoch;
    if (this.epoch !== null) {
      for (const prefix of answer.prefixes) changed = this.learn(prefix, answer.epoch, now) || changed;
    }
    this.epoch = answer.epoch;
    this.rereading = false;
    this.lastReadAt = now;
    if (this.failing || this.staleLogged) this.logger.info({ epoch: answer.epoch }, "revocation log readable again");
    this.failing = false;
    this.staleLogged = false;
    if (this.prune(now)) changed = true;
    if (changed) this.saveState();
    return false;
  }

  private learn(prefix: unknown, epoch: number, now: number): boolean {
    if (typeof prefix !== "string" || !prefix.startsWith(PREFIX_START) || Buffer.byteLength(prefix) > KEY_MAX_BYTES) {
      this.logger.warn({ epoch }, "revocation log entry ignored: not a credential-key prefix");
      return false;
    }
    if (this.rereading && this.revoked.has(prefix)) return false;
    // Deleted first so that the map stays in learning order (pruning walks it from the front).
    this.revoked.delete(prefix);
    this.revoked.set(prefix, now);
    this.logger.info({ prefix, epoch }, "revocation learned");
    if (this.revoked.size > MAX_REVOKED_PREFIXES) {
      this.revoked.clear();
      this.revoked.set(PREFIX_START, now);
      this.logger.warn({ limit: MAX_REVOKED_PREFIXES }, "too many revoked prefixes: every identity is refused for the deny window");
    }
    return true;
  }

  /** Drops prefixes learned deny_seconds ago or earlier; true if any was dropped. */
  private prune(now: number): boolean {
    const oldest = now - this.config.deny_seconds * 1000;
    let dropped = false;
    for (const [prefix, learnedAt] of this.revoked) {
      if (learnedAt > oldest) break;
      this.revoked.delete(prefix);
      dropped = true;
    }
    return dropped;
  }

  private read(since: number): Promise<LogAnswer> {
    const controller = new AbortController();
    this.inFlight = controller;
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.config.timeout_ms} ms`)), this.config.timeout_ms);
    // Relative to the configured URL, so a path in front of the bridge (a proxy) is kept.
    const url = new URL(`v1/revocations?since=${since}`, this.config.bridge_url + "/");
    return new Promise<LogAnswer>((resolve, reject) => {
      const request = https.request(url, { method: "GET", agent: this.agent, signal: controller.signal, headers: { accept: "application/json" } });
      request.once("error", (error) => reject(controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : error));
      request.once("response", (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) request.destroy(new Error("the revocation log answer is too large"));
          else chunks.push(chunk);
        });
        response.once("error", reject);
        response.once("end", () => {
          if (response.statusCode !== 200) return reject(new Error(`the bridge answered ${response.statusCode}`));
          try {
            resolve(parseAnswer(Buffer.concat(chunks).toString("utf8")));
          } catch (error) {
            reject(error);
          }
        });
      });
      request.end();
    }).finally(() => clearTimeout(timer));
  }

  private createAgent(): https.Agent {
    const expected = this.config.bridge_spiffe_id;
    return new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      cert: readFileSync(this.config.cert_file),
      key: readFileSync(this.config.key_file),
      ca: readFileSync(this.config.ca_file),
      minVersion: "TLSv1.2",
      // The bridge is known by its SPIFFE ID, not by a host name (an X.509-SVID may carry none).
      checkServerIdentity: (_host: string, certificate: PeerCertificate) => {
        const uris = (certificate.subjectaltname ?? "").split(", ").filter((name) => name.startsWith("URI:")).map((name) => name.slice(4));
        return uris.length === 1 && uris[0] === expected ? undefined : new Error(`the bridge's certificate is not ${expected}`);
      },
    });
  }

  private tlsFilesStamp(): string {
    return [this.config.cert_file, this.config.key_file, this.config.ca_file]
      .map((file) => {
        const stat = statSync(file);
        return `${stat.mtimeMs}:${stat.size}`;
      })
      .join(",");
  }

  /** An SVID rotation (new files) takes effect on the next connection; a half-written set is skipped. */
  private reloadTlsIfChanged(): void {
    const now = this.clock();
    if (now - this.tlsCheckedAt < TLS_RELOAD_CHECK_MS && now >= this.tlsCheckedAt) return;
    this.tlsCheckedAt = now;
    try {
      const stamp = this.tlsFilesStamp();
      if (stamp === this.tlsStamp) return;
      const agent = this.createAgent();
      this.agent.destroy();
      this.agent = agent;
      this.tlsStamp = stamp;
      this.logger.info("revocation client certificate reloaded");
    } catch (error) {
      this.logger.warn({ reason: (error as Error).message }, "revocation client certificate files unreadable; keeping the previous ones");
    }
  }

  private restoreState(): void {
    const file = this.config.state_file;
    if (!file) return;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return; // none yet
    }
    try {
      const state = JSON.parse(text) as { version?: unknown; epoch?: unknown; revoked?: unknown };
      if (state.version !== STATE_VERSION || !Number.isSafeInteger(state.epoch) || (state.epoch as number) < 0 || !Array.isArray(state.revoked)) {
        throw new Error("unexpected shape");
      }
      const entries = (state.revoked as unknown[])
        .filter((entry): entry is [string, number] =>
          Array.isArray(entry) && typeof entry[0] === "string" && entry[0].startsWith(PREFIX_START) && Number.isFinite(entry[1]))
        .sort((a, b) => a[1] - b[1]);
      for (const [prefix, learnedAt] of entries.slice(-MAX_REVOKED_PREFIXES)) this.revoked.set(prefix, Math.min(learnedAt, this.clock()));
      this.epoch = state.epoch as number;
      this.prune(this.clock());
      this.logger.info({ epoch: this.epoch, revoked: this.revoked.size }, "revocation state restored");
    } catch (error) {
      this.logger.warn({ file, reason: (error as Error).message }, "revocation state file ignored");
    }
  }

  private saveState(): void {
    const file = this.config.state_file;
    if (!file) return;
    const state = { version: STATE_VERSION, epoch: this.epoch ?? 0, revoked: [...this.revoked] };
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, JSON.stringify(state) + "\n", { mode: 0o600 });
      renameSync(temporary, file);
    } catch (error) {
      this.logger.warn({ file, reason: (error as Error).message }, "revocation state file not written");
    }
  }
}

function parseAnswer(text: string): LogAnswer {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error("the revocation log answer is not JSON");
  }
  const { epoch, prefixes, gap } = (body ?? {}) as { epoch?: unknown; prefixes?: unknown; gap?: unknown };
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0 || !Array.isArray(prefixes) || (gap !== undefined && typeof gap !== "boolean")) {
    throw new Error("the revocation log answer is not {epoch, prefixes}");
  }
  return { epoch: epoch as number, prefixes: prefixes as string[], gap: gap === true };
}
