// Credential objects the provider SDKs call again whenever they need a credential, so a client
// kept for hours refreshes itself through the SDK's L1 and the sidecar:
//   AWS     an AwsCredentialIdentityProvider returning `expiration` (the SDK re-calls it 5 min before);
//   GCP     a google-auth-library AuthClient (authClient option) whose every token request resolves again;
//   Azure   an @azure/core-auth TokenCredential (refreshAfterTimestamp = when L1 stops serving it);
//   OpenAI  an azureADTokenProvider (openai calls it before every request).
// Each works for any service of its provider, catalogued or added to the sidecar's extra_services:
//   new KMSClient({ region, credentials: awsCredentials("aws_kms", { region }) })
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@aws-sdk/types";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import type { AuthClient, gaxios } from "google-auth-library";
import { checkResources } from "./agent.ts";
import { hexrClient, type AwsCredentialSet, type HexrClient, type Resolved, type TokenCredentialSet } from "./client.ts";
import { CredentialError, HexrError } from "./errors.ts";
import { providerOf } from "./grammar.ts";

type GaxiosOptions = gaxios.GaxiosOptions;
type GaxiosResponse<T> = gaxios.GaxiosResponse<T>;

export interface CredentialOptions {
  region?: string;
  /** Default: the process's client (hexrClient()). */
  client?: HexrClient;
}

function requireProvider(service: string, provider: string): void {
  if (providerOf(service) !== provider) {
    throw new HexrError(`${service} is not a ${provider} service`, { type: "BadRequest", status: 400, service });
  }
}

async function resolve(service: string, options: CredentialOptions): Promise<Resolved> {
  checkResources(service, options.region);
  return (options.client ?? hexrClient()).resolve(service, options.region);
}

function awsSet(resolved: Resolved): AwsCredentialSet {
  const c = resolved.answer.credentials as Partial<AwsCredentialSet>;
  if (typeof c.AccessKeyId !== "string" || typeof c.SecretAccessKey !== "string") {
    throw new CredentialError("the sidecar's answer holds no AWS credentials", { status: 502, service: resolved.answer.service });
  }
  return c as AwsCredentialSet;
}

function tokenSet(resolved: Resolved): TokenCredentialSet {
  const c = resolved.answer.credentials as Partial<TokenCredentialSet>;
  if (typeof c.access_token !== "string") {
    throw new CredentialError("the sidecar's answer holds no access token", { status: 502, service: resolved.answer.service });
  }
  return c as TokenCredentialSet;
}

/** AWS: an identity provider for any AWS SDK v3 client's `credentials`. */
export function awsCredentials(service: string, options: CredentialOptions = {}): AwsCredentialIdentityProvider {
  requireProvider(service, "aws");
  return async (): Promise<AwsCredentialIdentity> => {
    const resolved = await resolve(service, options);
    const c = awsSet(resolved);
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(resolved.answer.expires_at * 1000),
    };
  };
}

/** Azure: a TokenCredential for any Azure SDK client (scopes are ignored: the service decides the audience). */
export function azureCredential(service: string, options: CredentialOptions = {}): TokenCredential {
  requireProvider(service, "azure");
  const bufferMs = 600_000;
  return {
    async getToken(_scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken> {
      const resolved = await resolve(service, options);
      const expiresOnTimestamp = resolved.answer.expires_at * 1000;
      return {
        token: tokenSet(resolved).access_token,
        expiresOnTimestamp,
        refreshAfterTimestamp: Math.max(Date.now(), expiresOnTimestamp - bufferMs),
        tokenType: "Bearer",
      };
    },
  };
}

/** Azure OpenAI: the `azureADTokenProvider` of openai's AzureOpenAI (called before every request). */
export function azureADTokenProvider(service = "azure_openai", options: CredentialOptions = {}): () => Promise<string> {
  requireProvider(service, "azure");
  return async () => tokenSet(await resolve(service, options)).access_token;
}

let authClientClass: (new (service: string, options: CredentialOptions) => AuthClient) | undefined;

/**
 * GCP: a google-auth-library AuthClient for any Google Cloud client's `authClient` option (or
 * `googleAuthOptions: { authClient }`). Its token comes from the sidecar on every request, so
 * the SDK's L1 decides when to exchange again.
 *
 * It works with the google-auth-library 10 clients (BigQuery 8, Pub/Sub 5: they read headers as
 * a Headers object) and the 9 ones (Storage 7, Vertex AI 1.x: they Object.assign them): the
 * Headers object it returns also carries `authorization` as a plain property.
 */
export async function googleAuthClient(service: string, options: CredentialOptions = {}): Promise<AuthClient> {
  requireProvider(service, "gcp");
  if (!authClientClass) {
    let gal: typeof import("google-auth-library");
    try {
      gal = await import("google-auth-library");
    } catch {
      throw new HexrError("GCP services need the optional peer dependency google-auth-library: npm install google-auth-library", {
        type: "MissingDependency",
        service,
      });
    }
    class HexrGoogleAuthClient extends gal.AuthClient {
      constructor(
        readonly hexrService: string,
        private readonly hexrOptions: CredentialOptions,
      ) {
        super();
      }

      async getAccessToken(): Promise<{ token: string; res: null }> {
        const resolved = await resolve(this.hexrService, this.hexrOptions);
        const token = tokenSet(resolved).access_token;
        this.credentials = { token_type: "Bearer", expiry_date: resolved.answer.expires_at * 1000 };
        return { token, res: null };
      }

      async getRequestHeaders(): Promise<Headers> {
        const { token } = await this.getAccessToken();
        const headers = new Headers({ authorization: `Bearer ${token}` });
        // google-auth-library 9 consumers Object.assign() the headers: give them an own property.
        Object.defineProperty(headers, "authorization", { value: `Bearer ${token}`, enumerable: true });
        return headers;
      }

      async request<T>(opts: GaxiosOptions): Promise<GaxiosResponse<T>> {
        const headers = new Headers(opts.headers as HeadersInit | undefined);
        const { token } = await this.getAccessToken();
        headers.set("authorization", `Bearer ${token}`);
        return this.transporter.request<T>({ ...opts, headers });
      }
    }
    authClientClass = HexrGoogleAuthClient;
  }
  return new authClientClass(service, options);
}
