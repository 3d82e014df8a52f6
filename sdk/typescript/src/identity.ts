// Where the process's JWT-SVID comes from:
//   - the SPIFFE Workload API (SPIFFE_ENDPOINT_SOCKET set): FetchJWTSVID over gRPC (workload-api.ts);
//   - else a file (HEXR_JWT_SVID_FILE), as SPIRE's helper or a test leaves it: re-read whenever
//     it changes (size, mtime, inode), so a rotating SVID works.
// Either way a token is never used past its `exp`: an expired one is an AuthenticationError. The
// token is never logged, and never put in an error.
import { readFileSync, statSync, type Stats } from "node:fs";
import { AuthenticationError } from "./errors.ts";
import { parseAgentSpiffeId } from "./grammar.ts";

export interface JwtSvid {
  /** The compact JWS: a bearer secret. */
  readonly token: string;
  /** The token's `sub`, an agent SPIFFE ID. */
  readonly spiffeId: string;
  /** The token's `exp`, epoch seconds. */
  readonly expiresAt: number;
}

export interface JwtSvidSource {
  /** The current JWT-SVID; rejects with AuthenticationError when there is none or it has expired. */
  fetchJwtSvid(): Promise<JwtSvid>;
  /** Where the token comes from (no secret): for error messages and the README. */
  readonly description: string;
  close?(): void;
}

/** The JWT-SVID's audience the Credential Injector expects (HEXR_JWT_AUDIENCE). */
export const DEFAULT_JWT_AUDIENCE = "hexr-credential-injector";

/**
 * Reads `sub` and `exp` of a JWT-SVID without verifying it (the sidecar and the injector verify
 * it): the SDK needs them for its cache key and to never send an expired token.
 */
export function decodeJwtSvid(token: string, where: string): JwtSvid {
  const parts = token.split(".");
  let claims: { sub?: unknown; exp?: unknown } | undefined;
  if (parts.length === 3) {
    try {
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    } catch {
      claims = undefined;
    }
  }
  if (!claims || typeof claims !== "object") throw new AuthenticationError(`${where} does not hold a JWT-SVID`);
  if (typeof claims.sub !== "string" || !parseAgentSpiffeId(claims.sub)) {
    throw new AuthenticationError(`the JWT-SVID from ${where} does not name an agent SPIFFE ID`);
  }
  if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) throw new AuthenticationError(`the JWT-SVID from ${where} has no exp`);
  return { token, spiffeId: claims.sub, expiresAt: claims.exp };
}

export function requireUnexpired(svid: JwtSvid, where: string): JwtSvid {
  if (Date.now() >= svid.expiresAt * 1000) throw new AuthenticationError(`the JWT-SVID from ${where} has expired`);
  return svid;
}

/** A JWT-SVID kept in a file; re-read when the file changes. */
export class FileJwtSvidSource implements JwtSvidSource {
  readonly description: string;
  private stamp = "";
  private current: JwtSvid | undefined;

  constructor(readonly path: string) {
    this.description = `the JWT-SVID file ${path}`;
  }

  async fetchJwtSvid(): Promise<JwtSvid> {
    return this.fetchSync();
  }

  /** Synchronous: one stat() per call, a read only when the file changed. */
  fetchSync(): JwtSvid {
    let stats: Stats;
    try {
      stats = statSync(this.path);
    } catch {
      this.current = undefined;
      this.stamp = "";
      throw new AuthenticationError(`no JWT-SVID: ${this.description} cannot be read`);
    }
    const stamp = `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
    if (stamp !== this.stamp || !this.current) {
      let text: string;
      try {
        text = readFileSync(this.path, "utf8").trim();
      } catch {
        throw new AuthenticationError(`no JWT-SVID: ${this.description} cannot be read`);
      }
      this.current = decodeJwtSvid(text, this.description);
      this.stamp = stamp;
    }
    return requireUnexpired(this.current, this.description);
  }
}

/** There is no identity: every fetch is an AuthenticationError (not running in a Hexr pod). */
export class NoJwtSvidSource implements JwtSvidSource {
  readonly description = "no identity source (set SPIFFE_ENDPOINT_SOCKET or HEXR_JWT_SVID_FILE)";
  async fetchJwtSvid(): Promise<JwtSvid> {
    throw new AuthenticationError(`no SPIFFE identity: ${this.description}`);
  }
}

/**
 * The source the environment names: the Workload API when SPIFFE_ENDPOINT_SOCKET is set, else
 * HEXR_JWT_SVID_FILE, else none (every exchange then fails with AuthenticationError).
 */
export async function identityFromEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<JwtSvidSource> {
  if (env.SPIFFE_ENDPOINT_SOCKET) {
    const { WorkloadApiJwtSvidSource } = await import("./workload-api.ts");
    return new WorkloadApiJwtSvidSource({ socket: env.SPIFFE_ENDPOINT_SOCKET, audience: env.HEXR_JWT_AUDIENCE ?? DEFAULT_JWT_AUDIENCE });
  }
  if (env.HEXR_JWT_SVID_FILE) return new FileJwtSvidSource(env.HEXR_JWT_SVID_FILE);
  return new NoJwtSvidSource();
}
