// Asks the real OPA server, over its REST data API, whether an exchange is allowed. Connections
// are kept alive (this sits on the L3 path). Anything but a well-formed decision — OPA down, slow,
// erroring, refusing the injector's token, or the policy not loaded — is a 503: a broken policy
// engine never means "allow".
//
// OPA's API requires a token (`opa run --authentication=token --authorization=basic`, with
// policy/system/authz.rego): the injector reads it from `opa.token_file` at start and sends it as
// `Authorization: Bearer` on every decision. It is never logged, put on a command line or in the
// environment.
import { readFileSync, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { ConfigError } from "./config.ts";
import { policyUnavailable } from "./errors.ts";
import type { Logger } from "./log.ts";

export interface PolicyInput {
  spiffe_id: string;
  tenant: string;
  agent: string;
  role: string;
  service: string;
  region: string;
  /** Credential-key prefixes revoked within the deny window; the policy denies a key under one. */
  revoked_prefixes: string[];
}

export interface PolicyDecision {
  allow: boolean;
  /** [] = full access to the service; otherwise the "service:scope" grants that apply. */
  scopes: string[];
  reasons: string[];
}

const MAX_RESPONSE_BYTES = 64 * 1024;
/** RFC 6750's token68: what can follow "Bearer " in a header. */
const BEARER_TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;

/**
 * The injector's OPA token from its file: one line, a bearer token of at least 32 characters.
 * Warns (never printing it) when others than the owner may read the file.
 */
export function readOpaToken(file: string, logger?: Logger): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError("opa.token_file", `is not readable: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const token = text.trim();
  if (token.length < 32 || token.length > 4096 || !BEARER_TOKEN.test(token)) {
    throw new ConfigError("opa.token_file", "must hold one bearer token of at least 32 characters (A-Z a-z 0-9 . _ ~ + / -)");
  }
  if ((statSync(file).mode & 0o077) !== 0) logger?.warn({ file }, "opa.token_file may be read by others than its owner (chmod 600)");
  return token;
}

type StaleSocketError = NodeJS.ErrnoException & { staleSocket?: boolean };

export class OpaClient {
  private readonly endpoint: URL;
  private readonly agent: http.Agent;

  private readonly authorization: Record<string, string>;

  /** `token`: sent as Authorization: Bearer (null: none, for an OPA that asks for none). */
  constructor(url: string, decisionPath: string, private readonly timeoutMs: number, token: string | null = null) {
    this.authorization = token === null ? {} : { authorization: `Bearer ${token}` };
    this.endpoint = new URL(`${url}/v1/data/${decisionPath}`);
    const isHttps = this.endpoint.protocol === "https:";
    this.agent = isHttps ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  async decide(input: PolicyInput): Promise<PolicyDecision> {
    let reply: { status: number; body: string };
    try {
      reply = await this.post(JSON.stringify({ input }));
    } catch (error) {
      const timedOut = (error as Error).name === "AbortError" || (error as Error).name === "TimeoutError";
      throw policyUnavailable(timedOut ? `the policy engine did not answer within ${this.timeoutMs} ms` : "the policy engine is unreachable");
    }
    if (reply.status === 401 || reply.status === 403) {
      throw policyUnavailable(`the policy engine refused the injector's token (${reply.status}); check opa.token_file`);
    }
    if (reply.status !== 200) throw policyUnavailable(`the policy engine answered ${reply.status}`);
    return parseDecision(reply.body);
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * A kept-alive connection OPA has meanwhile closed (a restart, say) fails with ECONNRESET on
   * reuse; that one case is retried once on a fresh connection, as the Node.js docs advise.
   */
  private async post(body: string): Promise<{ status: number; body: string }> {
    try {
      return await this.postOnce(body);
    } catch (error) {
      if (!(error as StaleSocketError).staleSocket) throw error;
      return this.postOnce(body);
    }
  }

  private postOnce(body: string): Promise<{ status: number; body: string }> {
    const transport = this.endpoint.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const request = transport.request(this.endpoint, {
        method: "POST",
        agent: this.agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...this.authorization },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      request.once("error", (error: StaleSocketError) => {
        error.staleSocket = request.reusedSocket && error.code === "ECONNRESET";
        reject(error);
      });
      request.once("response", (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
          if (text.length > MAX_RESPONSE_BYTES) request.destroy(new Error("policy engine reply too large"));
        });
        response.once("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.once("error", reject);
      });
      request.end(body);
    });
  }
}

function parseDecision(body: string): PolicyDecision {
  let result: unknown;
  try {
    result = (JSON.parse(body) as { result?: unknown }).result;
  } catch {
    throw policyUnavailable("the policy engine's reply is not JSON");
  }
  if (result === undefined) throw policyUnavailable("the policy decision is undefined (is the policy loaded?)");
  const decision = result as Partial<PolicyDecision>;
  const isStringList = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === "string");
  if (typeof decision.allow !== "boolean" || !isStringList(decision.scopes ?? []) || !isStringList(decision.reasons ?? [])) {
    throw policyUnavailable("the policy decision is not {allow, scopes, reasons}");
  }
  return { allow: decision.allow, scopes: decision.scopes ?? [], reasons: decision.reasons ?? [] };
}
