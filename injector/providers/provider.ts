// What every cloud exchange takes and gives back.
import type { AgentSpiffeId, Provider } from "../../contract/index.ts";
import type { AgentProof } from "../auth/authenticate.ts";
import { ExchangeError, denied, exchangeTimedOut } from "../errors.ts";

/**
 * What a provider is asked for, after authentication and OPA. It carries no token: the agent's
 * JWT-SVID stays with the authenticator, and each provider mints the token its cloud sees.
 */
export interface ExchangeRequest {
  identity: AgentSpiffeId;
  service: string;
  region: string;
  /** The scopes OPA granted ([] = full access), e.g. ["read"] for "aws_s3:read". */
  scopes: readonly string[];
}

export interface IssuedCredentials {
  /** AWS: AccessKeyId, SecretAccessKey, SessionToken; GCP and Azure: access_token, token_type; llm_*: api_key, models. */
  credentials: Record<string, string>;
  expiresAt: Date;
}

export interface CloudExchange {
  readonly provider: Provider;
  /**
   * True only for an exchange done on the agent's behalf at a service that verifies the agent
   * itself (the vault, for llm_* keys): only such an exchange is given the agent's proof (its
   * JWT-SVID). A cloud exchange leaves this unset: clouds see only the tokens the injector mints.
   */
  readonly actsForAgent?: boolean;
  exchange(request: ExchangeRequest, proof?: AgentProof): Promise<IssuedCredentials>;
  /** Releases connections held between exchanges, if the provider keeps any. */
  close?(): void;
}

/** The only scope the injector knows how to enforce ("aws_s3:read" and the like). */
export const READ_SCOPE = "read";

/**
 * The granted scopes this provider can enforce: "full" when OPA granted the whole service.
 * Scopes it cannot enforce are left out (narrower, never wider); none left → 403.
 */
export function enforceableScopes(request: ExchangeRequest, supported: readonly string[]): "full" | string[] {
  if (request.scopes.length === 0) return "full";
  const enforceable = request.scopes.filter((scope) => supported.includes(scope));
  if (enforceable.length === 0) {
    throw denied(`the granted scopes (${request.scopes.join(", ")}) of ${request.service} cannot be enforced by this injector`);
  }
  return enforceable;
}

/**
 * Runs one exchange against a deadline. The signal is handed to the cloud SDK so it stops its
 * own work; the race makes the deadline hold even if a library ignored the signal.
 * Failures become the contract's statuses: 504 when the deadline passed, else what `classify` says.
 */
export async function withDeadline<T>(
  serviceName: string,
  timeoutMs: number,
  call: (signal: AbortSignal) => Promise<T>,
  classify: (error: unknown) => ExchangeError,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  const deadline = new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
  deadline.catch(() => undefined);
  try {
    return await Promise.race([call(signal), deadline]);
  } catch (error) {
    if (error instanceof ExchangeError) throw error;
    if (signal.aborted) throw exchangeTimedOut(serviceName, timeoutMs);
    throw classify(error);
  }
}
