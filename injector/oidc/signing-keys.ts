// The keys the injector signs cloud tokens with, kept as files in one folder so that every replica
// (and a restart) agrees on which key signs and which are published, from the files and the clock
// alone. A key file is named after the moment it may start signing:
//
//   20260301T000000Z.pem   20260301T000000Z-hexr-prod.jwk   (UTC, YYYYMMDDTHHMMSSZ[-label])
//
// At any moment, sorting the keys by that time:
//   - active:   the newest key whose time has come. It signs every token.
//   - pending:  keys whose time has not come yet. Published, so clouds that cached the JWKS see a
//               key before any token names it; not signing.
//   - previous: older keys. A key retired when its successor activated; it stays published until
//               the last token it signed has expired (retired + token lifetime + a margin for clock
//               skew), then it leaves the JWKS. The file may then be deleted.
//
// RS256 keys only (RSA, at least 2048 bits): it is the one algorithm AWS, GCP and Entra ID all
// accept from an external issuer (see injector/README.md).
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, type KeyObject } from "node:crypto";
import { mkdir, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { calculateJwkThumbprint, type JWK } from "jose";
import { ConfigError, type OidcConfig } from "../config.ts";
import type { Logger } from "../log.ts";

export const SIGNING_ALGORITHM = "RS256";
/** Extra time a retired key stays published after its last token's `exp`: clock skew between us and the clouds. */
export const OVERLAP_MARGIN_SECONDS = 60;
/** How long clouds may cache the discovery document and JWKS (Cache-Control max-age). */
export const JWKS_MAX_AGE_SECONDS = 300;
/** The folder is read again at most this often (a new key file needs no restart). */
const RESCAN_INTERVAL_MS = 10_000;
const MIN_RSA_BITS = 2048;
const GENERATED_RSA_BITS = 2048;
const KEY_FILE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-[A-Za-z0-9_.-]{1,64})?\.(pem|jwk)$/;

/** A published key as the JWKS shows it: public members only. */
export interface PublicJwk extends JWK {
  kty: "RSA";
  kid: string;
  alg: typeof SIGNING_ALGORITHM;
  use: "sig";
  n: string;
  e: string;
}

export interface SigningKey {
  kid: string;
  file: string;
  /** Epoch seconds from which it may sign. */
  activatesAt: number;
  privateKey: KeyObject;
  publicJwk: PublicJwk;
}

export type KeyState = "active" | "pending" | "previous";

export interface KeyStatus {
  kid: string;
  file: string;
  state: KeyState;
  activatesAt: number;
  /** In the JWKS now: active and pending keys, and previous ones until `unpublishAt`. */
  published: boolean;
  /** Previous keys: when it leaves the JWKS (epoch seconds); its file may be deleted after that. */
  unpublishAt?: number;
}

export interface RotateOptions {
  /** Seconds between publishing the new key and its first signature; default JWKS_MAX_AGE_SECONDS. */
  publishAheadSeconds?: number;
}

export interface SigningKeyStoreOptions {
  /** Epoch milliseconds; tests move it. */
  clock?: () => number;
  logger?: Logger;
  /** Refuse a folder without a key that may sign now (default true; the rotate CLI creates the first key). */
  requireActiveKey?: boolean;
}

/** No key may sign right now (none yet active, folder unreadable): the injector answers 503. */
export class NoSigningKey extends Error {}

export class SigningKeyStore {
  private keys: SigningKey[] = [];
  private readonly loaded = new Map<string, { mtimeMs: number; size: number; key: SigningKey }>();
  private scannedAt = 0;
  private scanning: Promise<void> | undefined;
  private readonly clock: () => number;

  private constructor(
    private readonly dir: string,
    private readonly tokenLifetimeSeconds: number,
    private readonly options: SigningKeyStoreOptions,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Reads the folder strictly: a key file that cannot be used is a configuration error, and so is
   * a folder without a key that may sign now, unless `generate_key` (development) lets it make one.
   */
  static async open(config: Pick<OidcConfig, "signing_keys_dir" | "generate_key" | "token_lifetime_seconds">, options: SigningKeyStoreOptions = {}): Promise<SigningKeyStore> {
    const store = new SigningKeyStore(config.signing_keys_dir, config.token_lifetime_seconds, options);
    const field = "oidc.signing_keys_dir";
    try {
      if (config.generate_key) await mkdir(store.dir, { recursive: true, mode: 0o700 });
      await store.scan(true);
    } catch (error) {
      throw error instanceof ConfigError ? error : new ConfigError(field, `cannot be read: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    }
    if (store.keys.length === 0 && config.generate_key) {
      await store.rotate({ publishAheadSeconds: 0 });
    }
    if (!store.activeKey() && options.requireActiveKey !== false) {
      throw new ConfigError(field, "has no key that may sign now (add a YYYYMMDDTHHMMSSZ.pem RSA key, or set oidc.generate_key in development)");
    }
    return store;
  }

  /** The key that signs now; re-reads the folder when it is due. */
  async signingKey(): Promise<SigningKey> {
    await this.refresh();
    const active = this.activeKey();
    if (!active) throw new NoSigningKey("no OIDC signing key is active");
    return active;
  }

  /** The public keys to publish now: active, pending, and previous ones still in their overlap. */
  async jwks(): Promise<{ keys: PublicJwk[] }> {
    await this.refresh();
    const byKid = new Map(this.keys.map((key) => [key.kid, key]));
    return { keys: this.statuses().filter((status) => status.published).map((status) => byKid.get(status.kid)!.publicJwk) };
  }

  /** Every key in the folder with its state, newest first (no key material). */
  statuses(): KeyStatus[] {
    const now = this.now();
    const activeIndex = this.activeIndex(now);
    return this.keys
      .map((key, index): KeyStatus => {
        const base = { kid: key.kid, file: path.basename(key.file), activatesAt: key.activatesAt };
        if (index > activeIndex) return { ...base, state: "pending", published: true };
        if (index === activeIndex) return { ...base, state: "active", published: true };
        const unpublishAt = this.keys[index + 1].activatesAt + this.tokenLifetimeSeconds + OVERLAP_MARGIN_SECONDS;
        return { ...base, state: "previous", published: now < unpublishAt, unpublishAt };
      })
      .reverse();
  }

  /**
   * Adds a new key file (RSA 2048, mode 0600) that starts signing `publishAheadSeconds` from now,
   * and never before the newest existing key. Returns its kid and activation time.
   */
  async rotate(options: RotateOptions = {}): Promise<{ kid: string; activatesAt: number; file: string }> {
    const ahead = options.publishAheadSeconds ?? JWKS_MAX_AGE_SECONDS;
    if (!Number.isInteger(ahead) || ahead < 0) throw new RangeError("publishAheadSeconds must be a whole number of seconds, 0 or more");
    const newest = this.keys.at(-1)?.activatesAt ?? 0;
    const activatesAt = Math.max(this.now() + ahead, newest + 1);
    const { privateKey } = await promisify(generateKeyPair)("rsa", { modulusLength: GENERATED_RSA_BITS });
    const kid = await thumbprint(privateKey);
    const file = path.join(this.dir, `${stamp(activatesAt)}-${kid.slice(0, 8)}.pem`);
    const temporary = path.join(this.dir, `.tmp-${randomBytes(6).toString("hex")}`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(temporary, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
    await rename(temporary, file);
    this.options.logger?.info({ kid, activates_at: new Date(activatesAt * 1000).toISOString(), file: path.basename(file) }, "oidc signing key added");
    await this.scan(false, true);
    return { kid, activatesAt, file };
  }

  /** Re-reads the folder now (a new or removed key file), instead of at the next interval. */
  async reload(): Promise<void> {
    await this.scan(false, true);
  }

  private now(): number {
    return Math.floor(this.clock() / 1000);
  }

  private activeIndex(now: number): number {
    let index = -1;
    while (index + 1 < this.keys.length && this.keys[index + 1].activatesAt <= now) index++;
    return index;
  }

  private activeKey(): SigningKey | undefined {
    return this.keys[this.activeIndex(this.now())];
  }

  private async refresh(): Promise<void> {
    if (Date.now() - this.scannedAt < RESCAN_INTERVAL_MS) return;
    try {
      await this.scan(false);
    } catch {
      // Keep serving the keys already loaded; the next interval tries again.
      this.options.logger?.warn({ dir: this.dir }, "oidc signing key folder could not be read");
    }
  }

  /**
   * Loads every key file (unchanged ones from memory). `strict` (start-up) refuses a file that is
   * not a usable key; later scans skip it with a warning, keeping the keys that work. Concurrent
   * callers share one scan; `fresh` waits for one already under way, which may predate a change
   * the caller has just made, and reads the folder again.
   */
  private async scan(strict: boolean, fresh = false): Promise<void> {
    if (fresh && this.scanning) await this.scanning.catch(() => undefined);
    this.scanning ??= this.load(strict).finally(() => {
      this.scanning = undefined;
      this.scannedAt = Date.now();
    });
    return this.scanning;
  }

  private async load(strict: boolean): Promise<void> {
    const names = (await readdir(this.dir)).filter((name) => !name.startsWith("."));
    const keys: SigningKey[] = [];
    for (const name of names) {
      const file = path.join(this.dir, name);
      const match = KEY_FILE.exec(name);
      if (!match) {
        if (/\.(pem|jwk)$/.test(name)) this.refuse(strict, name, "is not named YYYYMMDDTHHMMSSZ[-label].pem|.jwk (its activation time, UTC)");
        continue;
      }
      try {
        const info = await stat(file);
        const cached = this.loaded.get(file);
        if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) {
          keys.push(cached.key);
          continue;
        }
        const key = await loadKey(file, match);
        this.loaded.set(file, { mtimeMs: info.mtimeMs, size: info.size, key });
        keys.push(key);
      } catch (error) {
        this.refuse(strict, name, error instanceof KeyFileError ? error.message : "cannot be read");
      }
    }
    for (const file of this.loaded.keys()) if (!keys.some((key) => key.file === file)) this.loaded.delete(file);
    this.keys = keys.sort((a, b) => a.activatesAt - b.activatesAt || a.file.localeCompare(b.file));
  }

  private refuse(strict: boolean, name: string, problem: string): void {
    if (strict) throw new ConfigError(`oidc.signing_keys_dir: ${name}`, problem);
    this.options.logger?.warn({ file: name, problem }, "oidc signing key file skipped");
  }
}

class KeyFileError extends Error {}

async function loadKey(file: string, match: RegExpExecArray): Promise<SigningKey> {
  const [, year, month, day, hour, minute, second, extension] = match;
  const activatesAt = Date.UTC(+year, +month - 1, +day, +hour, +minute, +second) / 1000;
  if (Number.isNaN(activatesAt) || stamp(activatesAt) !== path.basename(file).slice(0, 16)) throw new KeyFileError("names an impossible date");
  const text = await readFile(file, "utf8");
  let privateKey: KeyObject;
  try {
    privateKey = extension === "pem" ? createPrivateKey(text) : createPrivateKey({ key: JSON.parse(text), format: "jwk" });
  } catch {
    throw new KeyFileError(`is not a private key (${extension === "pem" ? "PKCS#8 or PKCS#1 PEM" : "private JWK"})`);
  }
  if (privateKey.asymmetricKeyType !== "rsa" || (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new KeyFileError(`is not an RSA key of at least ${MIN_RSA_BITS} bits (the clouds need RS256)`);
  }
  const kid = await thumbprint(privateKey);
  const { n, e } = createPublicKey(privateKey).export({ format: "jwk" }) as { n: string; e: string };
  return { kid, file, activatesAt, privateKey, publicJwk: { kty: "RSA", kid, alg: SIGNING_ALGORITHM, use: "sig", n, e } };
}

/** RFC 7638 thumbprint of the public key: stable, and names the key without revealing anything. */
async function thumbprint(privateKey: KeyObject): Promise<string> {
  const { n, e } = createPublicKey(privateKey).export({ format: "jwk" }) as { n: string; e: string };
  return calculateJwkThumbprint({ kty: "RSA", n, e });
}

/** Epoch seconds → YYYYMMDDTHHMMSSZ. */
export function stamp(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}
