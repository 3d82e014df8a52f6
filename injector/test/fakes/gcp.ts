// A loopback stand-in for Google's STS (RFC 8693 token exchange) and IAM Credentials
// (generateAccessToken). There is no local emulator for either, so this checks every field the
// real endpoints require and answers in their formats; a request with any field wrong gets the
// error Google would give, so a test expecting success fails.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";

export const GCP_AUDIENCE = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/hexr/providers/spire";

export interface GcpFakeOptions {
  /** The subject tokens the STS accepts (the JWT-SVIDs the test minted). */
  acceptsSubjectToken(token: string): boolean;
  /** Service accounts the federated identity may impersonate. */
  serviceAccounts: string[];
}

export interface RecordedCall {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface GcpFake {
  url: string;
  calls: RecordedCall[];
  /** Makes every answer wait this long (for timeout tests). */
  delayMs: number;
  close(): Promise<void>;
}

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";
const READ_ONLY = "https://www.googleapis.com/auth/cloud-platform.read-only";

export async function startGcpFake(options: GcpFakeOptions): Promise<GcpFake> {
  const federatedTokens = new Map<string, string>(); // federated token → scope
  const fake: GcpFake = { url: "", calls: [], delayMs: 0, close: async () => undefined };

  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      fake.calls.push({ path: request.url ?? "", headers: request.headers, body });
      setTimeout(() => route(request, response, body), fake.delayMs);
    });
  });

  function route(request: IncomingMessage, response: ServerResponse, body: string) {
    if (request.method === "POST" && request.url === "/v1/token") return tokenExchange(request, response, body);
    const impersonation = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(request.url ?? "");
    if (request.method === "POST" && impersonation) return generateAccessToken(request, response, body, decodeURIComponent(impersonation[1]));
    reply(response, 404, { error: { code: 404, message: "Not found", status: "NOT_FOUND" } });
  }

  function tokenExchange(request: IncomingMessage, response: ServerResponse, body: string) {
    if (!request.headers["content-type"]?.startsWith("application/x-www-form-urlencoded")) {
      return reply(response, 400, { error: "invalid_request", error_description: "expected a form body" });
    }
    const form = new URLSearchParams(body);
    const problems = [
      form.get("grant_type") !== TOKEN_EXCHANGE && "grant_type",
      form.get("audience") !== GCP_AUDIENCE && "audience",
      form.get("subject_token_type") !== JWT_TYPE && "subject_token_type",
      form.get("requested_token_type") !== ACCESS_TOKEN_TYPE && "requested_token_type",
      ![CLOUD_PLATFORM, READ_ONLY].includes(form.get("scope") ?? "") && "scope",
    ].filter(Boolean);
    if (problems.length > 0) return reply(response, 400, { error: "invalid_request", error_description: `bad ${problems.join(", ")}` });
    if (!options.acceptsSubjectToken(form.get("subject_token") ?? "")) {
      return reply(response, 400, { error: "invalid_grant", error_description: "The audience in ID Token does not match the expected audience." });
    }
    const accessToken = `ya29.federated-${randomBytes(12).toString("hex")}`;
    federatedTokens.set(accessToken, form.get("scope")!);
    reply(response, 200, { access_token: accessToken, issued_token_type: ACCESS_TOKEN_TYPE, token_type: "Bearer", expires_in: 3599 });
  }

  function generateAccessToken(request: IncomingMessage, response: ServerResponse, body: string, serviceAccount: string) {
    const federated = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
    // Impersonation needs a federated token with the cloud-platform scope.
    if (!federated || federatedTokens.get(federated) !== CLOUD_PLATFORM) {
      return reply(response, 401, { error: { code: 401, message: "Request had invalid authentication credentials.", status: "UNAUTHENTICATED" } });
    }
    if (!options.serviceAccounts.includes(serviceAccount)) {
      return reply(response, 403, { error: { code: 403, message: "Permission 'iam.serviceAccounts.getAccessToken' denied", status: "PERMISSION_DENIED" } });
    }
    let parsed: { scope?: unknown; lifetime?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      return reply(response, 400, { error: { code: 400, message: "Invalid JSON payload", status: "INVALID_ARGUMENT" } });
    }
    const scopes = parsed.scope;
    const lifetime = /^(\d+)s$/.exec(String(parsed.lifetime))?.[1];
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every((scope) => [CLOUD_PLATFORM, READ_ONLY].includes(scope)) || !lifetime) {
      return reply(response, 400, { error: { code: 400, message: "Invalid scope or lifetime", status: "INVALID_ARGUMENT" } });
    }
    const expireTime = new Date(Date.now() + Number(lifetime) * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    reply(response, 200, { accessToken: `ya29.sa-${randomBytes(12).toString("hex")}`, expireTime });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  fake.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}

function reply(response: ServerResponse, status: number, body: unknown) {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  response.end(JSON.stringify(body));
}
