// GCP: Workload Identity Federation. google-auth-library's IdentityPoolClient does the RFC 8693
// token exchange at the STS endpoint with a token the injector minted for GCP (aud = the workload
// identity pool provider) as the subject token, then, when a service account is configured for
// the identity, impersonates it through the IAM Credentials API.
import { IdentityPoolClient } from "google-auth-library";
import type { GcpConfig } from "../config.ts";
import { exchangeRejected, exchangeUnavailable, type ExchangeError } from "../errors.ts";
import { mostSpecific } from "../identity-map.ts";
import type { CloudTokenMinter } from "../oidc/cloud-tokens.ts";
import { READ_SCOPE, enforceableScopes, withDeadline, type CloudExchange, type ExchangeRequest, type IssuedCredentials } from "./provider.ts";

const SERVICE_NAME = "GCP STS";
const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const FULL_ACCESS_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
const READ_ONLY_SCOPE = "https://www.googleapis.com/auth/cloud-platform.read-only";

export class GcpExchange implements CloudExchange {
  readonly provider = "gcp";

  constructor(
    private readonly config: GcpConfig,
    private readonly tokens: CloudTokenMinter,
  ) {}

  async exchange(request: ExchangeRequest): Promise<IssuedCredentials> {
    const scopes = enforceableScopes(request, [READ_SCOPE]);
    const serviceAccount = mostSpecific(this.config.service_accounts, request.identity);
    const subjectToken = await this.tokens.mint(request.identity.spiffeId, this.config.token_audience);
    return withDeadline(SERVICE_NAME, this.config.timeout_ms, async (signal) => {
      // One client per exchange: the library caches the token it gets, and tokens belong to one agent.
      const client = new IdentityPoolClient({
        type: "external_account",
        audience: this.config.workload_identity_provider,
        subject_token_type: JWT_TOKEN_TYPE,
        token_url: this.config.sts_endpoint,
        subject_token_supplier: { getSubjectToken: async () => subjectToken },
        scopes: [scopes === "full" ? FULL_ACCESS_SCOPE : READ_ONLY_SCOPE],
        service_account_impersonation_url: serviceAccount && this.impersonationUrl(serviceAccount),
        service_account_impersonation: { token_lifetime_seconds: this.config.token_lifetime_seconds },
        transporterOptions: { signal },
      });
      const { token } = await client.getAccessToken();
      const expiry = client.credentials.expiry_date;
      if (!token || !expiry) throw exchangeRejected(SERVICE_NAME, "IncompleteToken");
      return { credentials: { access_token: token, token_type: "Bearer" }, expiresAt: new Date(expiry) };
    }, classify);
  }

  private impersonationUrl(serviceAccount: string): string {
    return `${this.config.iam_credentials_endpoint}/v1/projects/-/serviceAccounts/${serviceAccount}:generateAccessToken`;
  }
}

/**
 * An answer from Google → 502 with its error code: OAuth errors carry {"error": "invalid_grant"},
 * Google API errors {"error": {"status": "PERMISSION_DENIED"}}. No answer → 503.
 */
function classify(error: unknown): ExchangeError {
  const response = (error as { response?: { status?: number; data?: { error?: unknown } } }).response;
  if (!response?.status) return exchangeUnavailable(SERVICE_NAME);
  const detail = response.data?.error;
  const code = typeof detail === "string" ? detail : (detail as { status?: unknown } | undefined)?.status;
  return exchangeRejected(SERVICE_NAME, typeof code === "string" ? code : `HTTP ${response.status}`);
}
