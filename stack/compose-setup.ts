// The `setup` service of docker-compose.yml (run once before the others, in the project's
// directory): dev identity material, the L2 key, the bridge's X.509-SVID and Valkey's users into
// .dev/, then Envoy's, the injector's and the bridge's configuration for the compose network into
// .run/compose/.
//   node --import tsx stack/compose-setup.ts
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ensureDevKeyFile } from "../bridge/keyfile.ts";
import { devInjectorConfig } from "../injector/dev-config.ts";
import { defaultDevIdentityDir, ensureDevIdentity, issueServiceSvid } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
import { valkeyUsers } from "../support/valkey.ts";
import { devBridgeAccess } from "./bridge-access.ts";
import { BRIDGE_FILES, RENDERED_DIR, SERVICES, renderComposeEnvoyConfig } from "./compose.ts";
import { loadFilterConfiguration } from "./render.ts";
import { DEFAULT_PORTS } from "./defaults.ts";

const identity = await ensureDevIdentity(defaultDevIdentityDir);
ensureDevKeyFile(path.join(projectRoot, BRIDGE_FILES.keyFile));
await issueServiceSvid("bridge", identity.dir);
// The ACL file holds hashes only; 0644 so that the valkey image's own user can read the mount.
valkeyUsers(path.join(projectRoot, BRIDGE_FILES.valkeyUsersDir), 0o644);

const out = path.join(projectRoot, RENDERED_DIR);
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, "envoy.yaml"), renderComposeEnvoyConfig());

const injector = await devInjectorConfig({
  port: DEFAULT_PORTS.injector,
  opaUrl: `http://${SERVICES.opa}:${DEFAULT_PORTS.opa}`,
  stsEndpoint: `http://${SERVICES.moto}:${DEFAULT_PORTS.moto}`,
  identityDir: identity.dir,
});
injector.listen.host = "0.0.0.0";
// Relative to the config file (the injector resolves them so): the same file works in the
// container (/app) and on the host.
const relative = (file: string) => path.relative(out, file);
injector.tls = injector.tls && {
  ...injector.tls,
  cert_file: relative(injector.tls.cert_file),
  key_file: relative(injector.tls.key_file),
  client_ca_file: injector.tls.client_ca_file && relative(injector.tls.client_ca_file),
};
if (injector.jwt.jwks_file) injector.jwt.jwks_file = relative(injector.jwt.jwks_file);
if (injector.oidc) injector.oidc.signing_keys_dir = relative(injector.oidc.signing_keys_dir);
writeFileSync(path.join(out, "injector.json"), JSON.stringify(injector, null, 2) + "\n");

const access = devBridgeAccess({ jwksFile: relative(identity.jwks), filterConfiguration: loadFilterConfiguration() });
writeFileSync(path.join(projectRoot, BRIDGE_FILES.accessFile), JSON.stringify(access, null, 2) + "\n");

console.log(
  `wrote ${RENDERED_DIR}/envoy.yaml, ${RENDERED_DIR}/injector.json and ${BRIDGE_FILES.accessFile}; ` +
    `identity material and Valkey users in ${path.relative(projectRoot, identity.dir)}/`,
);
