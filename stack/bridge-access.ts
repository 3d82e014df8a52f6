// Who may call the local stack's bridge (its --access-file, bridge/README.md "Who may call"):
// the dev sidecar for its own tenant, the injector for every tenant, and the filter's revocation
// admins for purge and revocations, their JWT-SVIDs checked against the dev JWKS, as Envoy's
// jwt_authn checks them. Used by the native stack and by docker-compose's setup.
import type { AccessConfig, CallerRule } from "../bridge/index.ts";
import { DEFAULT_SIDECAR_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, INJECTOR_SPIFFE_ID } from "../support/dev-identity.ts";
import type { FilterConfiguration } from "./render.ts";

/** spiffe://hexr.local/sidecar/acme-corp/dev-pod → every sidecar of acme-corp, for acme-corp's keys. */
export function sidecarRule(sidecarSpiffeId: string = DEFAULT_SIDECAR_SPIFFE_ID): CallerRule {
  const match = /^(spiffe:\/\/[^/]+\/sidecar\/([^/]+))\/[^/]+$/.exec(sidecarSpiffeId);
  if (!match) throw new Error(`${sidecarSpiffeId} is not spiffe://{trust domain}/sidecar/{tenant}/{pod}`);
  return { spiffe_id: `${match[1]}/*`, tenants: [match[2]] };
}

export function devBridgeAccess(input: {
  /** The JWKS admins' JWT-SVIDs are checked against (the dev one in the stack). */
  jwksFile: string;
  /** The filter's configuration: its revocation admins are the bridge's admins. */
  filterConfiguration: FilterConfiguration;
  /** Rules added to the defaults (a test that wants the dev sidecar to serve another tenant too). */
  extraCallers?: CallerRule[];
}): AccessConfig {
  const revocation = input.filterConfiguration.revocation as { admin_spiffe_ids?: unknown } | null | undefined;
  const admins = Array.isArray(revocation?.admin_spiffe_ids) ? (revocation.admin_spiffe_ids as string[]) : [];
  return {
    callers: [sidecarRule(), { spiffe_id: INJECTOR_SPIFFE_ID, tenants: ["*"] }, ...(input.extraCallers ?? [])],
    admins,
    jwt: { jwks_file: input.jwksFile, audience: [DEV_AUDIENCE], issuer: DEV_ISSUER, clock_tolerance_seconds: 5 },
  };
}
