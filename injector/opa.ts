// Asks the real OPA server, over its REST data API, whether an exchange is allowed. Connections
// are kept alive (this sits on the L3 path). Anything but a well-formed decision — OPA down, slow,
// erroring, or the policy not loaded — is a 503: a broken policy engine never means "allow".
import http from "node:http";
import https from "node:https";
import { policyUnavailable } from "./errors.ts";

export interface PolicyInput {
  spiffe_id: string;
  tenant: string;
  agent: string;
  role: string;
  service: string;
  region: string;
}

export interface PolicyDecision {
  allow: boolean;
  /** [] = full access to the service; otherwise the "service:scope" grants that apply. */
  scopes: string[];
  reasons: string[];
}

const MAX_RESPONSE_BYTES = 64 * 1024;

type StaleSocketError = NodeJS.ErrnoException & { staleSocket?: boolean };

export class OpaClient {
  private readonly endpoint: URL;
  private readonly agent: http.Agent;

  constructor(url: string, decisionPath: string, private readonly timeoutMs: number) {
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
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
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
