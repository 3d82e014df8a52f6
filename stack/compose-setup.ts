// The `setup` service of docker-compose.yml (run once before the others, in the project's
// directory): dev identity material, the L2 key, the bridge's and the vault's X.509-SVIDs and
// Valkey's users into .dev/, then Envoy's (the vault door and the LLM route on), the injector's,
// the bridge's and the vault's configuration for the compose network into .run/compose/.
//   node --import tsx stack/compose-setup.ts
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ensureDevKeyFile } from "../bridge/keyfile.ts";
import { defaultDevIdentityDir, ensureDevIdentity, issueServiceSvid } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
import { valkeyUsers } from "../support/valkey.ts";
import { devBridgeAccess } from "./bridge-access.ts";
import { BRIDGE_FILES, RENDERED_DIR, VAULT_FILES, composeFilterConfiguration, renderComposeEnvoyConfig } from "./compose.ts";
import { composeInjectorConfig } from "./compose-injector.ts";
import { composeVaultConfig } from "./compose-vault.ts";

const identity = await ensureDevIdentity(defaultDevIdentityDir);
ensureDevKeyFile(path.join(projectRoot, BRIDGE_FILES.keyFile));
await issueServiceSvid("bridge", identity.dir);
// The ACL file holds hashes only; 0644 so that the valkey image's own user can read the mount.
valkeyUsers(path.join(projectRoot, BRIDGE_FILES.valkeyUsersDir), 0o644);

const out = path.join(projectRoot, RENDERED_DIR);
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, "envoy.yaml"), renderComposeEnvoyConfig());

// The injector's configuration (and the OPA token it reads): stack/compose-injector.ts.
const injector = await composeInjectorConfig(identity.dir);
const relative = (file: string) => path.relative(out, file);
writeFileSync(path.join(out, "injector.json"), JSON.stringify(injector, null, 2) + "\n");

const access = devBridgeAccess({ jwksFile: relative(identity.jwks), filterConfiguration: composeFilterConfiguration() });
writeFileSync(path.join(projectRoot, BRIDGE_FILES.accessFile), JSON.stringify(access, null, 2) + "\n");

// The vault's configuration (and its X.509-SVID): stack/compose-vault.ts.
writeFileSync(path.join(projectRoot, VAULT_FILES.configFile), JSON.stringify(await composeVaultConfig(identity), null, 2) + "\n");

console.log(
  `wrote ${RENDERED_DIR}/envoy.yaml, ${RENDERED_DIR}/injector.json, ${BRIDGE_FILES.accessFile} and ${VAULT_FILES.configFile}; ` +
    `identity material and Valkey users in ${path.relative(projectRoot, identity.dir)}/`,
);
