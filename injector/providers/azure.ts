// Azure: the federated client-assertion flow. The app registration (or user-assigned managed
// identity) trusts the injector's OIDC issuer through a federated identity credential;
// @azure/identity's ClientAssertionCredential presents a token the injector minted for Entra ID
// (aud = api://AzureADTokenExchange) as the client assertion and gets an access token for the
// service's resource scope.
import { readFileSync } from "node:fs";
import { ClientAssertionCredential } from "@azure/identity";
import { AZURE_RESOURCES, providerOf } from "../../contract/index.ts";
import type { AzureConfig } from "../config.ts";
import { ConfigError } from "../config.ts";
import { denied, exchangeRejected, exchangeUnavailable, type ExchangeError } from "../errors.ts";
import { mostSpecific } from "../identity-map.ts";
import type { CloudTokenMinter } from "../oidc/cloud-tokens.ts";
import { enforceableScopes, withDeadline, type CloudExchange, type ExchangeRequest, type IssuedCredentials } from "./provider.ts";

const SERVICE_NAME = "Azure AD";

/** `{resource}/.default` for each Azure service of the contract: the token scope of the service's Entra ID resource. */
export const BUILT_IN_AZURE_SCOPES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(AZURE_RESOURCES).map(([service, resource]) => [service, `${resource}/.default`]),
);

export class AzureExchange implements CloudExchange {
  readonly provider = "azure";
  private readonly scopes: Readonly<Record<string, string>>;
  private readonly trustedCa: string | undefined;

  constructor(
    private readonly config: AzureConfig,
    private readonly tokens: CloudTokenMinter,
    extraServices: readonly string[],
  ) {
    this.scopes = { ...BUILT_IN_AZURE_SCOPES, ...config.scopes };
    const unscoped = extraServices.filter((service) => providerOf(service) === "azure" && !this.scopes[service]);
    if (unscoped.length > 0) throw new ConfigError("azure.scopes", `has no token scope for ${unscoped.join(", ")}`);
    this.trustedCa = config.ca_file ? readFileSync(config.ca_file, "utf8") : undefined;
  }

  async exchange(request: ExchangeRequest): Promise<IssuedCredentials> {
    const clientId = mostSpecific(this.config.client_ids, request.identity);
    if (!clientId) throw denied(`no Azure client ID is configured for ${request.identity.tenant}/${request.identity.agent}/${request.identity.role}`);
    // An Azure token's reach is fixed by the app's role assignments; no scope can narrow it per request.
    enforceableScopes(request, []);
    const assertion = await this.tokens.mint(request.identity.spiffeId, this.config.token_audience);
    return withDeadline(SERVICE_NAME, this.config.timeout_ms, async (abortSignal) => {
      // One credential per exchange: MSAL caches tokens per client, and the assertion belongs to one agent.
      const credential = new ClientAssertionCredential(this.config.tenant_id, clientId, async () => assertion, {
        authorityHost: this.config.authority_host,
        // Instance discovery would call login.microsoftonline.com whatever the authority host is.
        disableInstanceDiscovery: true,
        tlsOptions: this.trustedCa ? { ca: this.trustedCa } : undefined,
        retryOptions: { maxRetries: 1, retryDelayInMs: 100 },
      });
      const token = await credential.getToken(this.scopes[request.service], { abortSignal });
      return { credentials: { access_token: token.token, token_type: token.tokenType ?? "Bearer" }, expiresAt: new Date(token.expiresOnTimestamp) };
    }, classify);
  }
}

/**
 * Entra ID answered with an error → 502 with its error and AADSTS code. @azure/identity wraps
 * MSAL's ServerError (the token endpoint's reply) as the cause of the error it throws; any other
 * failure (no metadata, no connection) means Entra ID could not be reached → 503.
 */
function classify(error: unknown): ExchangeError {
  const cause = (error as { cause?: { name?: string; errorCode?: string; errorNo?: string } }).cause;
  if (cause?.name !== "ServerError" || !cause.errorCode) return exchangeUnavailable(SERVICE_NAME);
  return exchangeRejected(SERVICE_NAME, cause.errorNo ? `${cause.errorCode}: AADSTS${cause.errorNo}` : cause.errorCode);
}
