// A loopback stand-in for Google's STS (RFC 8693 token exchange) and IAM Credentials
// (generateAccessToken). There is no local emulator for either, so this checks every field the
// real endpoints require and answers in their formats; a request with any field wrong gets the
// error Google would give, so a test expecting success fails. The subject token is verified as
// a workload identity pool's OIDC provider does: issuer, the issuer's published JWKS, audience
// (by default the provider's full resource name, with or without https:), expiry.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { FederationError, verifyFederatedToken, type FederationFailure, type TrustedIssuer } from "./oidc-federation.ts";

export const GCP_AUDIENCE = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/hexr/providers/spire";

export interface GcpFakeOptions {
  /** The workload identity pool provider's issuer (the tokens it accepts, and where its keys are). */
  provider: TrustedIssuer;
  /** The provider's allowed audiences; default its own resource name, with or without https:. */
  allowedAudiences?: string[];
  /** Service accounts the federated identity may impersonate. */
  serviceAccounts: string[];
  /** Loopback port (default: any free one). */
  port?: number;
}

/** Google STS's error_description per failure (all `invalid_grant`, HTTP 400). */
const INVALID_GRANT: Record<FederationFailure, string> = {
  malformed: "Invalid value for \"subject_token\": the token is not a valid JWT.",
  issuer: "The issuer in ID Token does not match the expected issuer of the provider.",
  keys_unavailable: "Unable to fetch the public keys of the OIDC provider.",
  signature: "Invalid ID Token signature.",
  expired: "ID Token has expired.",
  not_yet_valid: "ID Token is not valid yet.",
  audience: "The audience in ID Token does not match the expected audience.",
  claims: "ID Token is missing required claims.",
};

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
    if (request.method === "POST" && request.url === "/v1/token") return void tokenExchange(request, response, body);
    const impersonation = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(request.url ?? "");
    if (request.method === "POST" && impersonation) return generateAccessToken(request, response, body, decodeURIComponent(impersonation[1]));
    reply(response, 404, { error: { code: 404, message: "Not found", status: "NOT_FOUND" } });
  }

  async function tokenExchange(request: IncomingMessage, response: ServerResponse, body: string) {
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
    const allowedAudiences = options.allowedAudiences ?? [GCP_AUDIENCE, `https:${GCP_AUDIENCE}`];
    try {
      await verifyFederatedToken(form.get("subject_token") ?? "", options.provider, allowedAudiences);
    } catch (error) {
      if (!(error instanceof FederationError)) throw error;
      return reply(response, 400, { error: "invalid_grant", error_description: INVALID_GRANT[error.reason] });
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

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", resolve);
  });
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
