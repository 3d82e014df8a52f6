// Hexr Vault's side of docker-compose.yml's setup step (stack/compose-setup.ts): its X.509-SVID
// from the dev CA (svids/vault.pem, as the native stack issues it) and its configuration for the
// compose network: the native stack's (stackVaultConfig, stackVaultCallerRules, VAULT_ADMIN_ID) on
// 0.0.0.0, file paths relative to the configuration's own directory (the same file works in the
// container and on the host), its store and KEK in the vault's own volume.
import path from "node:path";
import { issueServiceSvid, type DevIdentityPaths } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
import { VAULT_FILES } from "./compose.ts";
import { DEFAULT_PORTS, VAULT_ADMIN_ID } from "./defaults.ts";
import { stackVaultCallerRules } from "./index.ts";
import { stackVaultConfig } from "./services.ts";

/** The configuration setup writes to .run/compose/vault.json (it also makes sure the vault's SVID exists). */
export async function composeVaultConfig(identity: DevIdentityPaths): Promise<ReturnType<typeof stackVaultConfig>> {
  const svid = await issueServiceSvid("vault", identity.dir);
  const configDir = path.dirname(path.join(projectRoot, VAULT_FILES.configFile));
  const relative = (file: string) => path.relative(configDir, file);
  return stackVaultConfig({
    host: "0.0.0.0",
    port: DEFAULT_PORTS.vault,
    tls: { cert: relative(svid.cert), key: relative(svid.key), bundle: relative(identity.ca) },
    jwks: { file: relative(identity.jwks) },
    callerRules: stackVaultCallerRules(),
    admins: [VAULT_ADMIN_ID],
    dataDir: VAULT_FILES.dataDirInContainer,
  });
}
