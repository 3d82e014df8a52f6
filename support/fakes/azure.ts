// A loopback stand-in for Microsoft Entra ID: the OpenID configuration document MSAL reads and the
// v2.0 token endpoint's client-credentials grant with a federated client assertion. There is no
// local emulator; this checks every field the real endpoint requires and answers in its format
// (errors included), over HTTPS because MSAL refuses a plain-HTTP authority. The client assertion
// is checked as a federated identity credential does: issuer, the issuer's published JWKS (RS256),
// audience api://AzureADTokenExchange, expiry, and the subject the credential names.
//
// The access tokens it issues are v1 JWTs as Entra ID issues them for Azure Storage: `iss`
// https://sts.windows.net/{tenant}/, `aud` the resource of the requested scope, `iat`/`nbf`/`exp`,
// signed (RS256) with a key of this fake's. That is what Azurite's `--oauth basic` checks (it
// decodes the token without verifying the signature: issuer prefix, storage audience, lifetime),
// so an SDK using the token against Azurite is accepted as it would be by Azure Storage.
import type { ServerResponse } from "node:http";
import { createServer } from "node:https";
import { createHash, randomBytes } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair, type JWK } from "jose";
import { FederationError, verifyFederatedToken, type FederationFailure, type TrustedIssuer } from "./oidc-federation.ts";

export const AZURE_AUDIENCE = "api://AzureADTokenExchange";

export interface AzureFakeOptions {
  cert: string;
  key: string;
  tenantId: string;
  /** The issuer every federated credential names. */
  issuer: TrustedIssuer;
  /**
   * Per client ID (app registration / managed identity), the subjects its federated credentials
   * name: exactly, or, ending in `*`, every subject with that prefix (as a flexible federated
   * identity credential's `claims['sub'] matches '...*'` does).
   */
  federatedSubjects: Record<string, string[]>;
  /** Loopback port (default: any free one). */
  port?: number;
  /** `expires_in` of the access tokens; Entra ID's default lifetime is 60 to 90 minutes. */
  tokenLifetimeSeconds?: number;
}

/** Entra ID's v1 issuer for a tenant: what Azure Storage (and Azurite) expect in `iss`. */
export const entraTokenIssuer = (tenantId: string) => `https://sts.windows.net/${tenantId}/`;

/** Entra ID's answer per failure: error, AADSTS code, description. */
const AADSTS: Record<FederationFailure, [string, number, string]> = {
  malformed: ["invalid_request", 50027, "JWT token is invalid or malformed."],
  issuer: ["invalid_client", 700211, "No matching federated identity record found for presented assertion issuer."],
  keys_unavailable: ["invalid_client", 50166, "Request to External OIDC endpoint failed."],
  signature: ["invalid_client", 700027, "Client assertion failed signature validation."],
  expired: ["invalid_client", 700024, "Client assertion is not within its valid time range."],
  not_yet_valid: ["invalid_client", 700024, "Client assertion is not within its valid time range."],
  audience: ["invalid_client", 700212, "No matching federated identity record found for presented assertion audience."],
  claims: ["invalid_request", 50027, "JWT token is invalid or malformed."],
};

export interface AzureFake {
  /** https://127.0.0.1:PORT: the authority host. */
  url: string;
  tokenRequests: URLSearchParams[];
  delayMs: number;
  close(): Promise<void>;
}

const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPE = /^(https:\/\/[a-z.]+)\/\.default$/;
const DEFAULT_TOKEN_LIFETIME_SECONDS = 3599;

export async function startAzureFake(options: AzureFakeOptions): Promise<AzureFake> {
  const fake: AzureFake = { url: "", tokenRequests: [], delayMs: 0, close: async () => undefined };
  const tenantPath = `/${options.tenantId}`;
  const signer = await tokenSigner();

  const server = createServer({ cert: options.cert, key: options.key }, (request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      const path = (request.url ?? "").split("?")[0];
      if (request.method === "GET" && path === `${tenantPath}/v2.0/.well-known/openid-configuration`) return reply(response, 200, openIdConfiguration());
      if (request.method === "GET" && path === "/discovery/v2.0/keys") return reply(response, 200, { keys: [signer.publicJwk] });
      if (request.method === "POST" && path === `${tenantPath}/oauth2/v2.0/token`) {
        const form = new URLSearchParams(body);
        fake.tokenRequests.push(form);
        return void setTimeout(() => void token(response, request.headers["content-type"] ?? "", form), fake.delayMs);
      }
      reply(response, 404, { error: "not_found" });
    });
  });

  function openIdConfiguration() {
    const base = `${fake.url}${tenantPath}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: `${fake.url}/discovery/v2.0/keys`,
      issuer: `${base}/v2.0`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      tenant_region_scope: "NA",
    };
  }

  async function token(response: ServerResponse, contentType: string, form: URLSearchParams) {
    if (!contentType.startsWith("application/x-www-form-urlencoded")) return aadError(response, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.");
    if (form.get("grant_type") !== "client_credentials") return aadError(response, 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    const resource = SCOPE.exec(form.get("scope") ?? "")?.[1];
    if (!resource) return aadError(response, 400, "invalid_scope", 1002012, "The provided value for scope is not valid.");
    if (form.get("client_assertion_type") !== CLIENT_ASSERTION_TYPE) return aadError(response, 400, "invalid_request", 7000215, "Invalid client assertion type.");
    const clientId = form.get("client_id") ?? "";
    const subjects = Object.hasOwn(options.federatedSubjects, clientId) ? options.federatedSubjects[clientId] : undefined;
    if (!subjects) return aadError(response, 400, "unauthorized_client", 700016, "Application was not found in the directory.");
    let claims;
    try {
      claims = await verifyFederatedToken(form.get("client_assertion") ?? "", options.issuer, [AZURE_AUDIENCE], ["RS256"]);
    } catch (error) {
      if (!(error instanceof FederationError)) throw error;
      const [code, number, description] = AADSTS[error.reason];
      return aadError(response, code === "invalid_client" ? 401 : 400, code, number, description);
    }
    if (!subjects.some((subject) => namesSubject(subject, String(claims.sub)))) {
      return aadError(response, 401, "invalid_client", 700213, "No matching federated identity record found for presented assertion subject.");
    }
    const lifetime = options.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
    const accessToken = await signer.sign({ tenantId: options.tenantId, clientId, resource, lifetime });
    reply(response, 200, { token_type: "Bearer", expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", resolve);
  });
  fake.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  fake.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}

function namesSubject(federated: string, subject: string): boolean {
  return federated.endsWith("*") ? subject.startsWith(federated.slice(0, -1)) : subject === federated;
}

interface AccessTokenSpec {
  tenantId: string;
  clientId: string;
  resource: string;
  lifetime: number;
}

/** Signs access tokens with a key of this fake's own, made at start; its public half is the fake's JWKS. */
async function tokenSigner(): Promise<{ publicJwk: JWK; sign(spec: AccessTokenSpec): Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const kid = randomBytes(8).toString("hex");
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  return {
    publicJwk,
    sign({ tenantId, clientId, resource, lifetime }) {
      const now = Math.floor(Date.now() / 1000);
      const principal = servicePrincipalOf(clientId);
      return new SignJWT({
        aud: resource, iss: entraTokenIssuer(tenantId), iat: now, nbf: now, exp: now + lifetime,
        appid: clientId, appidacr: "2", idp: entraTokenIssuer(tenantId), idtyp: "app",
        oid: principal, sub: principal, tid: tenantId, uti: randomBytes(16).toString("base64url"), ver: "1.0",
      })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid })
        .sign(privateKey);
    },
  };
}

/** An app-only token's oid/sub: the app's service principal, one stable ID per client ID. */
function servicePrincipalOf(clientId: string): string {
  const hex = createHash("sha256").update(clientId).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function aadError(response: ServerResponse, status: number, error: string, code: number, description: string) {
  reply(response, status, {
    error,
    error_description: `AADSTS${code}: ${description} Trace ID: 0000 Correlation ID: 0000 Timestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: "00000000-0000-0000-0000-000000000000",
    correlation_id: "00000000-0000-0000-0000-000000000000",
  });
}

function reply(response: ServerResponse, status: number, body: unknown) {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  response.end(JSON.stringify(body));
}
