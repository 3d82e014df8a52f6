// The `setup` service of docker-compose.yml (run once before the others, in the project's
// directory): dev identity material and the L2 key into .dev/, then Envoy's and the injector's
// configuration for the compose network into .run/compose/.
//   node --import tsx stack/compose-setup.ts
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ensureDevKeyFile } from "../bridge/keyfile.ts";
import { devInjectorConfig } from "../injector/dev-config.ts";
import { defaultDevIdentityDir, ensureDevIdentity } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
import { RENDERED_DIR, SERVICES, renderComposeEnvoyConfig } from "./compose.ts";
import { DEFAULT_PORTS } from "./defaults.ts";

const identity = await ensureDevIdentity(defaultDevIdentityDir);
ensureDevKeyFile(path.join(identity.dir, "l2-bridge.key"));

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

console.log(`wrote ${RENDERED_DIR}/envoy.yaml and ${RENDERED_DIR}/injector.json; identity material in ${path.relative(projectRoot, identity.dir)}/`);
