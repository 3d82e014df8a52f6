// AWS: AssumeRoleWithWebIdentity with a token the injector minted for STS (aud = the IAM OIDC
// provider's client ID, sub = the agent's SPIFFE ID); AWS trusts the injector's issuer through an
// IAM OIDC identity provider. The role comes from the config (most specific tenant/agent/role key
// wins) and a session policy always narrows it to the granted service. The call is unsigned, so
// the injector itself holds no AWS credentials.
import { createHash } from "node:crypto";
import { AssumeRoleWithWebIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AgentSpiffeId } from "../../contract/index.ts";
import type { AwsConfig } from "../config.ts";
import { denied, exchangeRejected, exchangeUnavailable, type ExchangeError } from "../errors.ts";
import { mostSpecific } from "../identity-map.ts";
import type { CloudTokenMinter } from "../oidc/cloud-tokens.ts";
import { iamActionPrefix, readOnlySessionPolicy, serviceSessionPolicy } from "./aws-session-policy.ts";
import { READ_SCOPE, enforceableScopes, withDeadline, type CloudExchange, type ExchangeRequest, type IssuedCredentials } from "./provider.ts";

const SERVICE_NAME = "AWS STS";
const MAX_SESSION_NAME = 64;

export class AwsExchange implements CloudExchange {
  readonly provider = "aws";
  private readonly sts: STSClient;

  constructor(
    private readonly config: AwsConfig,
    private readonly tokens: CloudTokenMinter,
  ) {
    this.sts = new STSClient({
      region: config.sts_region,
      endpoint: config.sts_endpoint ?? undefined,
      requestHandler: { requestTimeout: config.timeout_ms, connectionTimeout: config.timeout_ms },
    });
  }

  async exchange(request: ExchangeRequest): Promise<IssuedCredentials> {
    const roleArn = mostSpecific(this.config.role_arns, request.identity);
    if (!roleArn) throw denied(`no AWS role is configured for ${identityKey(request.identity)}`);
    const scopes = enforceableScopes(request, [READ_SCOPE]);
    const prefix = iamActionPrefix(request.service, this.config.action_prefixes);
    const command = new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: sessionName(request.identity),
      WebIdentityToken: await this.tokens.mint(request.identity.spiffeId, this.config.token_audience),
      DurationSeconds: this.config.duration_seconds,
      Policy: scopes === "full" ? serviceSessionPolicy(prefix) : readOnlySessionPolicy(prefix),
    });
    const reply = await withDeadline(SERVICE_NAME, this.config.timeout_ms, (abortSignal) => this.sts.send(command, { abortSignal }), classify);
    const { AccessKeyId, SecretAccessKey, SessionToken, Expiration } = reply.Credentials ?? {};
    if (!AccessKeyId || !SecretAccessKey || !SessionToken || !Expiration) throw exchangeRejected(SERVICE_NAME, "IncompleteCredentials");
    return { credentials: { AccessKeyId, SecretAccessKey, SessionToken }, expiresAt: Expiration };
  }

  close(): void {
    this.sts.destroy();
  }
}

/** hexr.{tenant}.{agent}.{role}: readable in CloudTrail; long IDs keep a hash so they stay unique. */
export function sessionName(identity: AgentSpiffeId): string {
  const name = `hexr.${identity.tenant}.${identity.agent}.${identity.role}`;
  if (name.length <= MAX_SESSION_NAME) return name;
  const hash = createHash("sha256").update(identity.spiffeId).digest("hex").slice(0, 8);
  return `${name.slice(0, MAX_SESSION_NAME - hash.length - 1)}.${hash}`;
}

function identityKey({ tenant, agent, role }: AgentSpiffeId): string {
  return `${tenant}/${agent}/${role}`;
}

/** STS answered → 502 with its error code; no answer at all → 503. */
function classify(error: unknown): ExchangeError {
  const failure = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const status = failure.$metadata?.httpStatusCode;
  if (status === undefined) return exchangeUnavailable(SERVICE_NAME);
  const code = failure.Code ?? (failure.name && failure.name !== "Error" ? failure.name : `HTTP ${status}`);
  return exchangeRejected(SERVICE_NAME, code);
}
