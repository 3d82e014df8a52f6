// A loopback stand-in for the sidecar and Hexr Vault together, implementing docs/vault-api.md
// strictly, in memory: what an agent sees on {HEXR_SIDECAR_URL}/v1/secrets. The same model as the
// Python SDK's tests/fake_vault.py.
//
// Strict where the document is: the caller's identity from `Authorization: Bearer <JWT-SVID>` (no
// identity → 401, as the sidecar answers), namespaces (trust domain, tenant, agent) and scopes
// (agent-level `*` or one role), the exact routes and methods (405), names, scopes and versions
// (400), exactly the documented query parameters and body fields (anything else → 400), JSON
// bodies with `content-type: application/json` and a content-length (415, 400), value and body
// limits (413), a put that changes the scope (409), out of scope (403), missing (404),
// all-or-nothing batches naming the failing secret, `cache-control: no-store` on every answer, no
// body on 204.
//
// Where the document leaves a choice, the strict reading (the lead's e2e run against the real
// vault confirms or corrects it): `scope` absent on a put is agent-level `*`, as is `?scope=*` (so
// re-putting a role-level secret without its scope is a 409); a put creating a secret scoped to
// another role than the caller's is a 403; a batch naming a secret twice is a 400, and its first
// failing name in request order decides between 404 and 403; an undocumented or repeated query
// parameter, or a version over 2^31 - 1, is a 400. These are also the readings of the vault in this
// repository (vault/routes.ts, scope.ts, body.ts, secrets.ts), checked against it when this
// stand-in was written; it is stricter only in refusing a chunked body (the SDK never sends one).
// Not modelled: the vault's own JWT-SVID verification (tokens are unsigned here), mTLS, audit.
import http from "node:http";
import type { AddressInfo } from "node:net";

export const MAX_VALUE_BYTES = 65536;
export const MAX_BATCH_NAMES = 64;
/** A value of MAX_VALUE_BYTES JSON-escaped at worst (\u00XX for every byte), plus room: the real vault's default. */
export const MAX_BODY_BYTES = 6 * MAX_VALUE_BYTES + 4096;
const MAX_VERSION = 2 ** 31 - 1;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;
const isName = (v: unknown): v is string => typeof v === "string" && NAME.test(v);
const isRole = (v: unknown): v is string => typeof v === "string" && SEGMENT.test(v) && v !== "." && v !== "..";

export interface Secret {
  scope: string;
  /** [value, created_at] per version; version N is versions[N - 1]. */
  versions: [string, string][];
}

export interface RecordedRequest {
  method: string;
  /** The request target: path and query, exactly as sent. */
  path: string;
  authorization: string | undefined;
  contentType: string | undefined;
  /** x-hexr-* headers the client sent (the sidecar would strip them; the SDK must not send any). */
  hexrHeaders: string[];
  /** The body parsed as JSON, or as text when it is not JSON, or undefined when empty. */
  body: unknown;
  status: number;
}

export interface FakeVault {
  url: string;
  requests: RecordedRequest[];
  revoked: Set<string>;
  /** Answer 503 to everything (storage or the key-encryption key unavailable). */
  unavailable: boolean;
  /** Replace the next answer. */
  nextAnswer?: { status: number; body: string; headers?: Record<string, string> };
  /** Stores a version directly (as another process of the agent would have). */
  seed(spiffeId: string, name: string, value: string, scope?: string): number;
  secret(spiffeId: string, name: string): Secret | undefined;
  /** Forgets every secret and request, and every knob set. */
  reset(): void;
  close(): Promise<void>;
}

interface Caller {
  namespace: string;
  role: string;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const bad = (message: string, status = 400) => new Refusal(status, "BadRequest", message);
const denied = (name: string) => new Refusal(403, "CredentialError", `the secret ${name} is outside this identity's scope`);
const rfc3339 = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

function callerOf(spiffeId: string): Caller {
  const [td, , tenant, agent, role] = spiffeId.slice("spiffe://".length).split("/");
  return { namespace: `${td}/${tenant}/${agent}`, role };
}

const may = (caller: Caller, secret: Secret) => secret.scope === "*" || secret.scope === caller.role;

export async function startFakeVault(): Promise<FakeVault> {
  const store = new Map<string, Map<string, Secret>>();
  const secretsOf = (namespace: string) => {
    let secrets = store.get(namespace);
    if (!secrets) store.set(namespace, (secrets = new Map()));
    return secrets;
  };

  const state: FakeVault = {
    url: "",
    requests: [],
    revoked: new Set(),
    unavailable: false,
    seed(spiffeId, name, value, scope = "*") {
      const secrets = secretsOf(callerOf(spiffeId).namespace);
      let secret = secrets.get(name);
      if (!secret) secrets.set(name, (secret = { scope, versions: [] }));
      secret.versions.push([value, rfc3339()]);
      return secret.versions.length;
    },
    secret: (spiffeId, name) => store.get(callerOf(spiffeId).namespace)?.get(name),
    reset() {
      store.clear();
      state.requests.length = 0;
      state.revoked.clear();
      state.unavailable = false;
      state.nextAnswer = undefined;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  function identify(headers: http.IncomingHttpHeaders): Caller {
    const auth = headers.authorization ?? "";
    if (!auth.startsWith("Bearer ")) throw new Refusal(401, "AuthenticationError", "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)");
    let sub: string;
    let exp: number;
    try {
      ({ sub, exp } = JSON.parse(Buffer.from(auth.slice(7).split(".")[1], "base64url").toString("utf8")));
      const parts = sub.slice("spiffe://".length).split("/");
      if (!sub.startsWith("spiffe://") || parts.length !== 5 || parts[1] !== "agent" || !parts.slice(2).every(isRole)) throw new Error();
    } catch {
      throw new Refusal(401, "AuthenticationError", "the JWT-SVID does not verify");
    }
    if (exp <= Date.now() / 1000) throw new Refusal(401, "AuthenticationError", "the JWT-SVID has expired");
    if (state.revoked.has(sub)) throw new Refusal(403, "CredentialError", "the identity is revoked");
    return callerOf(sub);
  }

  function query(search: string, allowed: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    if (!search) return out;
    for (const pair of search.split("&")) {
      const [key, value, ...rest] = pair.split("=");
      if (rest.length || value === undefined || !allowed.includes(key) || key in out) throw bad(`unknown, repeated or malformed query parameter '${key}'`);
      try {
        out[key] = decodeURIComponent(value);
      } catch {
        throw bad(`malformed query parameter '${key}'`);
      }
    }
    return out;
  }

  function json(raw: Buffer, contentType: string | undefined, fields: string[]): Record<string, unknown> {
    if ((contentType ?? "").split(";")[0].trim().toLowerCase() !== "application/json") throw bad("the body must be application/json", 415);
    if (raw.length > MAX_BODY_BYTES) throw bad("the body is too large", 413);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch {
      throw bad("the body is not JSON");
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) throw bad("the body is not a JSON object");
    const unknown = Object.keys(body).filter((k) => !fields.includes(k));
    if (unknown.length) throw bad(`unknown field '${unknown[0]}'`);
    return body as Record<string, unknown>;
  }

  function answer(method: string, target: string, headers: http.IncomingHttpHeaders, raw: Buffer): [number, unknown] {
    const caller = identify(headers);
    const [path, search = ""] = target.split(/\?(.*)/s);
    const rest = path.startsWith("/v1/secrets/") ? path.slice("/v1/secrets/".length) : undefined;
    let route: "list" | "batch" | "secret";
    if (path === "/v1/secrets") route = "list";
    else if (rest !== undefined && !rest.includes("/")) route = rest === "_batch" ? "batch" : "secret";
    else throw bad("no such route", 404);
    const methods = { list: ["GET"], batch: ["POST"], secret: ["GET", "PUT", "DELETE"] }[route];
    if (!methods.includes(method)) throw Object.assign(bad(`method not allowed here; use ${methods.join(", ")}`, 405), { headers: { allow: methods.join(", ") } });
    if ((method === "GET" || method === "DELETE") && raw.length) throw bad(`${method} takes no body`);
    if (headers["transfer-encoding"]) throw bad("a body needs a content-length");
    if (state.unavailable) throw new Refusal(503, "CredentialError", "the vault's storage is unavailable");
    const secrets = secretsOf(caller.namespace);

    if (route === "list") {
      query(search, []);
      const entries = [...secrets.entries()].filter(([, s]) => may(caller, s)).sort(([a], [b]) => (a < b ? -1 : 1));
      return [200, { secrets: entries.map(([name, s]) => ({ name, scope: s.scope, version: s.versions.length, created_at: s.versions.at(-1)![1] })) }];
    }
    if (route === "batch") {
      query(search, []);
      const names = json(raw, headers["content-type"], ["names"]).names;
      if (!Array.isArray(names) || names.length < 1 || names.length > MAX_BATCH_NAMES || !names.every(isName)) throw bad(`'names' must be 1 to ${MAX_BATCH_NAMES} secret names`);
      if (new Set(names).size !== names.length) throw bad("'names' names a secret twice");
      const out: Record<string, unknown> = {};
      for (const name of names as string[]) {
        const secret = secrets.get(name);
        if (!secret) throw bad(`no such secret: ${name}`, 404);
        if (!may(caller, secret)) throw denied(name);
        const [value, created] = secret.versions.at(-1)!;
        out[name] = { scope: secret.scope, version: secret.versions.length, value, created_at: created };
      }
      return [200, { secrets: out }];
    }
    const name = rest!;
    if (!isName(name)) throw bad("'name' must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$");
    let secret = secrets.get(name);
    if (method === "PUT") {
      const args = query(search, ["scope"]);
      if ("scope" in args && args.scope !== "*" && !isRole(args.scope)) throw bad("'scope' must be a role or '*'");
      const scope = args.scope ?? "*";
      const body = json(raw, headers["content-type"], ["value"]);
      if (!("value" in body)) throw bad("'value' is missing");
      const value = body.value;
      if (typeof value !== "string") throw bad("'value' must be a string");
      if (/\p{Cs}/u.test(value)) throw bad("'value' is not valid Unicode");
      if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw bad(`'value' is over ${MAX_VALUE_BYTES} bytes`, 413);
      if (!secret) {
        if (scope !== "*" && scope !== caller.role) throw new Refusal(403, "CredentialError", `the secret ${name} would be outside this identity's scope`);
        secrets.set(name, (secret = { scope, versions: [] }));
      } else if (!may(caller, secret)) {
        throw denied(name);
      } else if (secret.scope !== scope) {
        throw bad(`the secret ${name} has another scope`, 409);
      }
      const created = rfc3339();
      secret.versions.push([value, created]);
      return [201, { name, scope: secret.scope, version: secret.versions.length, created_at: created }];
    }
    const args = query(search, method === "GET" ? ["version"] : []);
    if ("version" in args && (!/^[1-9][0-9]*$/.test(args.version) || Number(args.version) > MAX_VERSION)) throw bad("'version' must be a positive integer");
    if (!secret) throw bad(`no such secret: ${name}`, 404);
    if (!may(caller, secret)) throw denied(name);
    if (method === "DELETE") {
      secrets.delete(name);
      return [204, undefined];
    }
    const version = args.version ? Number(args.version) : secret.versions.length;
    if (version > secret.versions.length) throw bad(`no such version of ${name}`, 404);
    const [value, created] = secret.versions[version - 1];
    return [200, { name, scope: secret.scope, version, value, created_at: created }];
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const text = raw.toString("utf8");
      let body: unknown = undefined;
      if (raw.length) {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
      const record: RecordedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        authorization: req.headers.authorization,
        contentType: req.headers["content-type"],
        hexrHeaders: Object.keys(req.headers).filter((k) => k.startsWith("x-hexr-")),
        body,
        status: 0,
      };
      state.requests.push(record);
      let status: number;
      let data: string;
      let headers: Record<string, string> = { "content-type": "application/json" };
      if (state.nextAnswer) {
        ({ status, body: data } = state.nextAnswer);
        headers = state.nextAnswer.headers ?? headers;
        state.nextAnswer = undefined;
      } else {
        try {
          const [s, b] = answer(record.method, record.path, req.headers, raw);
          status = s;
          data = s === 204 ? "" : JSON.stringify(b);
        } catch (error) {
          const refusal = error instanceof Refusal ? error : new Refusal(500, "CredentialError", "the fake failed");
          status = refusal.status;
          data = JSON.stringify({ error: { type: refusal.type, message: refusal.message } });
          headers = { ...headers, ...(refusal as Refusal & { headers?: Record<string, string> }).headers };
        }
      }
      record.status = status;
      if (status === 204) {
        res.writeHead(204, { "cache-control": "no-store" });
        res.end();
        return;
      }
      res.writeHead(status, { ...headers, "cache-control": "no-store", "content-length": Buffer.byteLength(data) });
      res.end(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
