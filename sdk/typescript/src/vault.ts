// Hexr Vault: secrets scoped by the agent's SPIFFE identity, through the pod's sidecar.
//
//   const vault = new VaultClient();
//   await vault.put("OPENAI_API_KEY", "sk-...");                       // agent-level: every role
//   await vault.put("RESEARCH_DB_KEY", "...", { scope: "researcher" }); // the researcher role only
//   const key = await vault.get("OPENAI_API_KEY");
//
//   const main = hexrAgent({ name: "my-agent", tenant: "acme-corp" },
//     secretsBatch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], async ({ OPENAI_API_KEY, ANTHROPIC_API_KEY }) => { ... }));
//
// The wire is docs/vault-api.md: {HEXR_SIDECAR_URL}/v1/secrets with the JWT-SVID as
// `Authorization: Bearer`, through the same HexrClient (agent, identity, transport) as the
// credential exchange. The SDK refuses what the vault would refuse anyway (a bad name, scope,
// version or value) before any request, with HexrError type BadRequest (status 400, 413 for a
// value over the limit). A value is never in an error, a span or the client's inspect/toJSON;
// the records getMany() returns and secretsBatch() passes show their names only when inspected
// or serialised (the values are ordinary properties for the code that reads them).
import { inspect } from "node:util";
import { hexrClient, HexrClient, type SidecarAnswer } from "./client.ts";
import { VAULT } from "./contract.ts";
import { CredentialError, HexrError, vaultErrorFromAnswer } from "./errors.ts";
import { isPathSegment, isSecretName } from "./grammar.ts";
import type { JwtSvidSource } from "./identity.ts";
import { instrumentedVault, type VaultCall } from "./telemetry.ts";

/** The scope the vault reports for an agent-level secret (every role of the agent). */
export const AGENT_SCOPE = "*";

export interface VaultClientOptions {
  /**
   * The HexrClient whose sidecar, identity and connections to use. Default: the process's
   * (hexrClient(), read at each call, so configure() applies), or a client of its own when
   * sidecarUrl, identity or timeoutMs is given.
   */
  client?: HexrClient;
  /** HEXR_SIDECAR_URL, default http://127.0.0.1:15080. */
  sidecarUrl?: string;
  /** Default: identityFromEnvironment() (Workload API, then HEXR_JWT_SVID_FILE). */
  identity?: JwtSvidSource;
  timeoutMs?: number;
}

export interface PutOptions {
  /** A role ("researcher") for a role-level secret; leave it out for an agent-level one. */
  scope?: string;
}

export interface GetOptions {
  /** A version (1, 2, ...); default the latest. */
  version?: number;
}

/** Secrets by name, as getMany() returns them and secretsBatch() passes them. */
export type Secrets<N extends string> = Readonly<Record<N, string>>;

const NAME_RULE = `1 to ${VAULT.name.max} characters of A-Za-z0-9_.-, starting with a letter or a digit`;

function invalid(message: string, status = 400): HexrError {
  return new HexrError(message, { type: "BadRequest", status });
}

// ---- client-side checks: what the vault would refuse with 400/413, refused before any request ----

function checkName(name: unknown): string {
  // The name is not echoed: a value passed where a name goes must not end up in the error.
  if (typeof name !== "string") throw invalid(`a secret name must be a string (${typeof name} given)`);
  const length = name.length;
  if (!isSecretName(name)) throw invalid(`a secret name must be ${NAME_RULE} (the one given has ${length} characters)`);
  return name;
}

function checkScope(scope: unknown): string | undefined {
  if (scope === undefined) return undefined;
  if (typeof scope !== "string" || !isPathSegment(scope)) {
    throw invalid("scope must be a role name, 1 to 128 characters of A-Za-z0-9._- (not '.' or '..'); leave it out for an agent-level secret");
  }
  return scope;
}

function checkVersion(version: unknown): number | undefined {
  if (version === undefined) return undefined;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
    throw invalid("version must be a positive integer (versions count from 1)");
  }
  return version;
}

const LONE_SURROGATE = /\p{Cs}/u;

function valueBody(value: unknown): string {
  if (typeof value !== "string") throw invalid(`a secret value must be a string (${typeof value} given)`);
  if (LONE_SURROGATE.test(value)) throw invalid("a secret value must be valid Unicode (it holds a lone surrogate)");
  const size = Buffer.byteLength(value, "utf8");
  if (size > VAULT.max_value_bytes) throw invalid(`a secret value is at most ${VAULT.max_value_bytes} bytes of UTF-8 (this one is ${size})`, 413);
  return JSON.stringify({ value });
}

function checkNames<N extends string>(names: unknown): N[] {
  if (typeof names === "string" || names === null || typeof names !== "object" || !(Symbol.iterator in names)) {
    throw invalid(`names must be an array of secret names, not ${typeof names === "string" ? "a string" : String(names)}`);
  }
  const out = [...new Set([...(names as Iterable<unknown>)].map(checkName))] as N[];
  if (out.length < 1 || out.length > VAULT.max_batch_names) {
    throw invalid(`a batch names 1 to ${VAULT.max_batch_names} secrets (${out.length} given)`);
  }
  return out;
}

// ---- answers --------------------------------------------------------------------------------------

function malformed(what: string): CredentialError {
  return new CredentialError(`the vault's answer is not ${what}`, { status: 502 });
}

function jsonObject(body: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined; // the SyntaxError quotes the body, which may hold a value: not passed on
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw malformed(what);
  return parsed as Record<string, unknown>;
}

const ECHO_MIN = 4;

const isVersion = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 1;

/** A record whose values are there for the code, but not for inspect/console.log/JSON.stringify. */
function secretsRecord<N extends string>(entries: [N, string][]): Secrets<N> {
  const record = Object.fromEntries(entries) as Record<N, string>;
  const shown = () => Object.fromEntries(entries.map(([name]) => [name, "[secret]"]));
  Object.defineProperty(record, inspect.custom, { value: () => shown(), enumerable: false });
  Object.defineProperty(record, "toJSON", { value: shown, enumerable: false });
  return Object.freeze(record);
}

/** The vault's secrets for the calling identity (docs/vault-api.md). */
export class VaultClient {
  private readonly own: HexrClient | undefined;
  private readonly given: HexrClient | undefined;

  constructor(options: VaultClientOptions = {}) {
    this.given = options.client;
    if (!options.client && (options.sidecarUrl !== undefined || options.identity !== undefined || options.timeoutMs !== undefined)) {
      this.own = new HexrClient({ sidecarUrl: options.sidecarUrl, identity: options.identity, timeoutMs: options.timeoutMs });
    }
  }

  private get client(): HexrClient {
    return this.given ?? this.own ?? hexrClient();
  }

  /** The sidecar this client talks to. */
  get sidecarUrl(): string {
    return this.client.sidecarUrl.href;
  }

  /**
   * Stores a new version of `name` (1 for a new secret) and resolves to its number. `scope`: a
   * role for a role-level secret; absent, agent-level. A secret's scope is fixed when it is
   * created: a put naming another rejects with BadRequest 409; a caller outside the secret's
   * scope with AccessDeniedError.
   */
  put(name: string, value: string, options: PutOptions = {}): Promise<number> {
    return instrumentedVault("put", async (call) => {
      checkName(name);
      const scope = checkScope(options?.scope);
      const body = valueBody(value);
      call.set("name", name);
      call.set("scope", scope ?? AGENT_SCOPE);
      const query = scope ? `?scope=${scope}` : "";
      const answer = jsonObject(await this.send(call, "PUT", `/${name}${query}`, body, 201, value), "a stored secret");
      if (answer.name !== name || !isVersion(answer.version)) throw malformed("a stored secret");
      call.set("version", answer.version);
      return answer.version;
    });
  }

  /** The value of `name`: its latest version, or `version`. */
  get(name: string, options: GetOptions = {}): Promise<string> {
    return instrumentedVault("get", async (call) => {
      checkName(name);
      const version = checkVersion(options?.version);
      call.set("name", name);
      if (version !== undefined) call.set("version", version);
      const query = version !== undefined ? `?version=${version}` : "";
      const answer = jsonObject(await this.send(call, "GET", `/${name}${query}`, undefined, 200), "a secret");
      if (answer.name !== name || typeof answer.value !== "string" || !isVersion(answer.version)) throw malformed("a secret");
      if (version !== undefined && answer.version !== version) throw malformed("the version asked for");
      call.set("version", answer.version);
      if (typeof answer.scope === "string") call.set("scope", answer.scope);
      return answer.value;
    });
  }

  /** The names of the secrets this identity may read (agent-level, and its own role's), sorted. Never a value. */
  list(): Promise<string[]> {
    return instrumentedVault("list", async (call) => {
      const answer = jsonObject(await this.send(call, "GET", "", undefined, 200), "a list of secrets");
      if (!Array.isArray(answer.secrets)) throw malformed("a list of secrets");
      const names = answer.secrets.map((entry: unknown) => {
        const name = (entry as { name?: unknown } | null)?.name;
        if (!isSecretName(name)) throw malformed("a list of secrets");
        return name;
      });
      return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    });
  }

  /** Deletes `name`, every version of it. */
  delete(name: string): Promise<void> {
    return instrumentedVault("delete", async (call) => {
      checkName(name);
      call.set("name", name);
      await this.send(call, "DELETE", `/${name}`, undefined, 204);
    });
  }

  /**
   * Every named secret in one round trip (POST /v1/secrets/_batch), keyed by name in the order
   * given. All or nothing: one missing name rejects with SecretNotFoundError, one denied with
   * AccessDeniedError, and no value is returned at all.
   */
  getMany<const N extends string>(names: readonly N[]): Promise<Secrets<N>> {
    return instrumentedVault("get_many", async (call) => {
      const wanted = checkNames<N>(names);
      call.set("names", wanted);
      const answer = jsonObject(await this.send(call, "POST", `/${VAULT.batch_name}`, JSON.stringify({ names: wanted }), 200), "a batch of secrets");
      const secrets = answer.secrets as Record<string, { value?: unknown }> | undefined;
      if (!secrets || typeof secrets !== "object" || Array.isArray(secrets)) throw malformed("the batch asked for");
      const keys = Object.keys(secrets);
      if (keys.length !== wanted.length || !wanted.every((name) => Object.hasOwn(secrets, name))) throw malformed("the batch asked for");
      return secretsRecord(
        wanted.map((name) => {
          const value = secrets[name]?.value;
          if (typeof value !== "string") throw malformed("the batch asked for");
          return [name, value] as [N, string];
        }),
      );
    });
  }

  /** Closes the connections of the HexrClient this VaultClient made for itself (none otherwise). */
  close(): void {
    this.own?.close();
  }

  toString(): string {
    return `VaultClient(${this.sidecarUrl})`;
  }

  toJSON(): { sidecarUrl: string } {
    return { sidecarUrl: this.sidecarUrl };
  }

  [inspect.custom](): string {
    return this.toString();
  }

  /** The one path every operation's request takes. */
  private async send(call: VaultCall, method: string, path: string, body: string | undefined, expected: number, value?: string): Promise<string> {
    const client = this.client;
    const svid = await client.jwtSvid();
    const answer: SidecarAnswer = await client.request(svid.token, method, `${VAULT.secrets_path.replace(/^\//, "")}${path}`, body);
    call.status = answer.status;
    call.set("status", answer.status);
    if (answer.status === expected) return answer.body;
    if (answer.status >= 200 && answer.status < 300) {
      throw new CredentialError(`the vault answered ${answer.status} where ${expected} was expected`, { status: 502 });
    }
    const error = vaultErrorFromAnswer(answer.status, answer.body);
    // The vault never echoes a value (its messages are built from names and numbers); should one
    // ever repeat the value put, pass on a fixed text instead. Not for values shorter than
    // ECHO_MIN: they are found inside ordinary words ("x" in "exists") and would only cost the message.
    if (value !== undefined && value.length >= ECHO_MIN && error.message.includes(value)) throw vaultErrorFromAnswer(answer.status, "");
    throw error;
  }
}

/**
 * Wraps `fn` so that each call first fetches the named secrets in ONE round trip
 * (VaultClient.getMany) and passes them as `fn`'s first argument; the caller passes the rest:
 *
 *   const main = hexrAgent({ name: "my-agent", tenant: "acme-corp" },
 *     secretsBatch(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], async ({ OPENAI_API_KEY }, topic: string) => { ... }));
 *   await main("status report");
 *
 * The secrets come in an object of their own, so nothing the caller passes is ever replaced. A
 * missing or denied secret rejects (SecretNotFoundError / AccessDeniedError) and `fn` is not
 * called. The names are checked when wrapping (HexrError BadRequest, thrown). `options.vault`:
 * the VaultClient to use; default a new VaultClient() (the process's HexrClient).
 */
export function secretsBatch<const N extends string, A extends unknown[], R>(
  names: readonly N[],
  fn: (secrets: Secrets<N>, ...args: A) => R | Promise<R>,
  options: { vault?: VaultClient } = {},
): (...args: A) => Promise<Awaited<R>> {
  const wanted = checkNames<N>(names);
  return async (...args: A): Promise<Awaited<R>> => {
    const secrets = await (options.vault ?? new VaultClient()).getMany(wanted);
    return (await fn(secrets, ...args)) as Awaited<R>;
  };
}
