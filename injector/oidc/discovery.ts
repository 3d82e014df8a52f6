// The two public documents that make the injector an OIDC issuer the clouds can trust:
// `{issuer}/.well-known/openid-configuration` and the JWKS it points to. AWS IAM, GCP Workload
// Identity Federation and Entra ID fetch them over the internet from the issuer URL, so in
// production they are published where that URL is served (writeDiscoveryDocuments: a static
// bucket / CDN, as SPIRE's OIDC discovery provider does for SPIRE), and the injector's own
// discovery listener (server.ts) serves the same bytes for an ingress or for tests.
import type { IncomingMessage, ServerResponse } from "node:http";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { OidcConfig } from "../config.ts";
import { badRequest } from "../errors.ts";
import { JWKS_MAX_AGE_SECONDS, SIGNING_ALGORITHM, type PublicJwk, type SigningKeyStore } from "./signing-keys.ts";

const WELL_KNOWN = "/.well-known/openid-configuration";

export interface DiscoveryPaths {
  /** URL path of the discovery document, e.g. /.well-known/openid-configuration */
  configuration: string;
  /** URL path of the JWKS, e.g. /keys */
  jwks: string;
}

export function discoveryPaths(config: Pick<OidcConfig, "issuer" | "jwks_uri">): DiscoveryPaths {
  return { configuration: new URL(config.issuer).pathname.replace(/\/+$/, "") + WELL_KNOWN, jwks: new URL(config.jwks_uri).pathname };
}

/**
 * OpenID Provider Metadata with the members AWS requires (issuer, jwks_uri,
 * response_types_supported, subject_types_supported, id_token_signing_alg_values_supported).
 * There is no authorization endpoint: nobody logs in here, tokens are only minted for clouds.
 */
export function openIdConfiguration(config: Pick<OidcConfig, "issuer" | "jwks_uri">) {
  return {
    issuer: config.issuer,
    jwks_uri: config.jwks_uri,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: [SIGNING_ALGORITHM],
    claims_supported: ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
  };
}

export interface DiscoveryDocument {
  path: string;
  body: string;
}

/** Both documents as they are to be published now (the JWKS changes as keys rotate). */
export async function discoveryDocuments(config: Pick<OidcConfig, "issuer" | "jwks_uri">, keys: SigningKeyStore): Promise<DiscoveryDocument[]> {
  const paths = discoveryPaths(config);
  const jwks: { keys: PublicJwk[] } = await keys.jwks();
  return [
    { path: paths.configuration, body: JSON.stringify(openIdConfiguration(config), null, 2) + "\n" },
    { path: paths.jwks, body: JSON.stringify(jwks, null, 2) + "\n" },
  ];
}

/**
 * Writes both documents under `outDir` at their URL paths (e.g. out/.well-known/openid-configuration
 * and out/keys), each atomically, for upload to wherever the issuer URL is served. Run it after each
 * rotation and again once a retired key's overlap has passed (or simply every few minutes).
 */
export async function writeDiscoveryDocuments(config: Pick<OidcConfig, "issuer" | "jwks_uri">, keys: SigningKeyStore, outDir: string): Promise<string[]> {
  const written: string[] = [];
  for (const document of await discoveryDocuments(config, keys)) {
    const file = path.join(outDir, ...document.path.split("/").filter(Boolean));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, document.body);
    await rename(`${file}.tmp`, file);
    written.push(file);
  }
  return written;
}

/**
 * The discovery listener's handler: GET or HEAD of the two documents, nothing else. Both are
 * public by design (clouds fetch them anonymously), so this listener asks for no client
 * certificate, and the exchange listener keeps refusing any TLS handshake without one.
 */
export function discoveryHandler(config: Pick<OidcConfig, "issuer" | "jwks_uri">, keys: SigningKeyStore) {
  const paths = discoveryPaths(config);
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const requested = (request.url ?? "/").split("?")[0];
    const known = requested === paths.configuration || requested === paths.jwks;
    if (!known) return sendJson(response, 404, badRequest("no such document", 404).body());
    if (request.method !== "GET" && request.method !== "HEAD") {
      return sendJson(response, 405, badRequest("only GET and HEAD are served here", 405).body(), { allow: "GET, HEAD" });
    }
    try {
      const document = (await discoveryDocuments(config, keys)).find((candidate) => candidate.path === requested)!;
      const headers = { "cache-control": `public, max-age=${JWKS_MAX_AGE_SECONDS}` };
      if (request.method === "HEAD") {
        response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(document.body), ...headers });
        return void response.end();
      }
      sendJson(response, 200, document.body, headers);
    } catch {
      sendJson(response, 503, '{"error":{"type":"CredentialError","message":"the signing keys are unavailable"}}');
    }
  };
}

function sendJson(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  response.end(body);
}
