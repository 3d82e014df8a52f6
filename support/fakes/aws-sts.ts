// A loopback stand-in for the check AWS STS makes on AssumeRoleWithWebIdentity, in front of the
// real moto server (which does not verify web-identity tokens). It records every
// AssumeRoleWithWebIdentity form, verifies the WebIdentityToken as IAM does for an OIDC identity
// provider (registered issuer, its discovery document and JWKS, signature, `aud` among the
// provider's client IDs, `exp`), applies the role's trust policy condition on `sub`, and answers
// with STS's own XML errors; a token that passes is forwarded to moto unchanged.
import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { FederationError, verifyFederatedToken, type FederationFailure, type TrustedIssuer } from "./oidc-federation.ts";

export interface AwsStsFrontOptions {
  motoUrl: string;
  /** The IAM OIDC identity provider: its issuer URL. */
  provider: TrustedIssuer;
  /** The provider's client ID list (the accepted `aud` values). */
  clientIds: string[];
  /**
   * Per role ARN, the trust policy's `StringLike {issuer host}:sub` patterns (`*` wildcard).
   * A role not listed trusts no one, as a role without a statement for the provider.
   */
  roleTrust: Record<string, string[]>;
}

export interface AwsStsFront {
  url: string;
  /** Every AssumeRoleWithWebIdentity form that reached "STS", accepted or not. */
  webIdentityCalls: URLSearchParams[];
  close(): Promise<void>;
}

/** STS's answer per failure: InvalidIdentityToken and its kin are 400s, a trust policy refusal 403. */
const STS_ERRORS: Record<FederationFailure, { code: string; message: string }> = {
  malformed: { code: "InvalidIdentityToken", message: "The web identity token that was passed could not be validated by AWS." },
  issuer: { code: "InvalidIdentityToken", message: "No OpenIDConnect provider found in your account for the token's issuer" },
  keys_unavailable: { code: "IDPCommunicationError", message: "Couldn't retrieve verification key from your identity provider" },
  signature: { code: "InvalidIdentityToken", message: "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request." },
  expired: { code: "ExpiredTokenException", message: "Token expired: current date/time must be before the expiration date/time" },
  not_yet_valid: { code: "InvalidIdentityToken", message: "Token is not valid yet" },
  audience: { code: "InvalidIdentityToken", message: "Incorrect token audience" },
  claims: { code: "InvalidIdentityToken", message: "The web identity token that was passed could not be validated by AWS." },
};

export async function startAwsStsFront(options: AwsStsFrontOptions): Promise<AwsStsFront> {
  const front: AwsStsFront = { url: "", webIdentityCalls: [], close: async () => undefined };
  const moto = new URL(options.motoUrl);
  const issuerHost = new URL(options.provider.issuer).host;

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => void handle(request, response, Buffer.concat(chunks)));
  });

  async function handle(request: IncomingMessage, response: ServerResponse, body: Buffer) {
    const form = new URLSearchParams(body.toString("utf8"));
    if (form.get("Action") === "AssumeRoleWithWebIdentity") {
      front.webIdentityCalls.push(form);
      try {
        const claims = await verifyFederatedToken(form.get("WebIdentityToken") ?? "", options.provider, options.clientIds, ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]);
        const patterns = options.roleTrust[form.get("RoleArn") ?? ""] ?? [];
        if (!patterns.some((pattern) => stringLike(pattern, String(claims.sub)))) {
          return stsError(response, 403, "AccessDenied", `Not authorized to perform sts:AssumeRoleWithWebIdentity (${issuerHost}:sub)`);
        }
      } catch (error) {
        if (!(error instanceof FederationError)) throw error;
        const { code, message } = STS_ERRORS[error.reason];
        return stsError(response, 400, code, message);
      }
    }
    forward(request, response, body);
  }

  function forward(request: IncomingMessage, response: ServerResponse, body: Buffer) {
    const upstream = httpRequest(
      { host: moto.hostname, port: moto.port, method: request.method, path: request.url, headers: { ...request.headers, host: moto.host } },
      (reply) => {
        response.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(response);
      },
    );
    upstream.on("error", () => response.destroy());
    upstream.end(body);
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  front.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  front.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return front;
}

/** IAM's StringLike: `*` matches any run of characters, `?` one. */
function stringLike(pattern: string, value: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${source}$`).test(value);
}

function stsError(response: ServerResponse, status: number, code: string, message: string) {
  const body =
    `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n` +
    `  <Error>\n    <Type>Sender</Type>\n    <Code>${code}</Code>\n    <Message>${message}</Message>\n  </Error>\n` +
    `  <RequestId>${randomUUID()}</RequestId>\n</ErrorResponse>\n`;
  response.writeHead(status, { "content-type": "text/xml", "content-length": Buffer.byteLength(body), "x-amzn-requestid": randomUUID() });
  response.end(body);
}
