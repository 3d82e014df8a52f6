// The stock-SDK doors as the stack sets them up, and the environment a stock SDK needs to find
// them: exactly what the README's "Stock SDKs" section tells users to set, and nothing else.
import { randomBytes } from "node:crypto";
import type { EnvoySidecar } from "./envoy.ts";
import type { FilterConfiguration, MetadataListener } from "./render.ts";

export interface MetadataListenerOptions {
  name: string;
  port: number;
  /** The one identity the listener serves. */
  spiffeId: string;
  projectId?: string;
}

/**
 * A metadata listener for one role: the sidecar's filter configuration, with the listener's
 * identity as the only identity source, the GCE and Azure doors open, and no other door.
 */
export function metadataListener(base: FilterConfiguration, options: MetadataListenerOptions): MetadataListener {
  // Everything else stays as on the agent listeners: the allow-list, the tiers, and revocation, so
  // that a revoked identity is refused here too (the listener's routes never reach /revoke).
  const { aws_container: _aws, ...shared } = base;
  const filterConfiguration: FilterConfiguration = {
    ...shared,
    identity_sources: ["static"],
    static_spiffe_id: options.spiffeId,
    gce_metadata: { project_id: options.projectId ?? "hexr-dev", service: "gcp_storage" },
    azure_managed_identity: { path: "/metadata/identity/oauth2/token", identity_header: randomBytes(24).toString("hex") },
  };
  return { name: options.name, port: options.port, filterConfiguration };
}

export interface StockSdkOptions {
  /** The process's JWT-SVID file (mode 0600), for the AWS door: the SDK re-reads it on every fetch. */
  tokenFile: string;
  /** Which metadata listener (default the first). */
  metadataListener?: string;
}

/** The variables that point the AWS, Google and Azure SDKs at this sidecar's doors. */
export function stockSdkEnvironment(sidecar: EnvoySidecar, options: StockSdkOptions): Record<string, string> {
  const env: Record<string, string> = {};
  if (sidecar.awsCredentialsUrl) {
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI = sidecar.awsCredentialsUrl;
    env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = options.tokenFile;
  }
  const listeners = sidecar.metadataListeners;
  const metadata = options.metadataListener ? listeners.find((l) => l.name === options.metadataListener) : listeners[0];
  if (options.metadataListener && !metadata) throw new Error(`sidecar ${sidecar.name} has no metadata listener ${options.metadataListener}`);
  if (metadata?.gceMetadataHost) {
    env.GCE_METADATA_HOST = metadata.gceMetadataHost;
    env.GCE_METADATA_IP = metadata.gceMetadataHost;
  }
  if (metadata?.azureIdentityEndpoint) {
    env.IDENTITY_ENDPOINT = metadata.azureIdentityEndpoint;
    env.IDENTITY_HEADER = metadata.azureIdentityHeader!;
  }
  return env;
}
