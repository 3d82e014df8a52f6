// The injector's and OPA's side of docker-compose.yml's setup step (stack/compose-setup.ts): the
// OPA token in .dev/opa/ (the token 0600 for the injector, its hash 0644 for the opa container's
// own user) and the injector's configuration for the compose network (its `llm` section reads
// llm_* keys from the vault service), with every file path
// relative to the configuration's own directory so the same file works in the container (/app)
// and on the host.
import path from "node:path";
import { devInjectorConfig } from "../injector/dev-config.ts";
import type { InjectorConfig } from "../injector/config.ts";
import { ensureOpaToken } from "../support/opa.ts";
import { projectRoot } from "../support/tools.ts";
import { OPA_FILES, RENDERED_DIR, SERVICES } from "./compose.ts";
import { DEFAULT_PORTS } from "./defaults.ts";
import { injectorLlmSection } from "./services.ts";

/** The configuration setup writes to .run/compose/injector.json (it also makes sure the OPA token exists). */
export async function composeInjectorConfig(identityDir: string): Promise<InjectorConfig> {
  const opaAuth = ensureOpaToken(path.join(projectRoot, OPA_FILES.dir), 0o644);
  const out = path.join(projectRoot, RENDERED_DIR);
  const injector = await devInjectorConfig({
    port: DEFAULT_PORTS.injector,
    opaUrl: `http://${SERVICES.opa}:${DEFAULT_PORTS.opa}`,
    stsEndpoint: `http://${SERVICES.moto}:${DEFAULT_PORTS.moto}`,
    identityDir,
    opaTokenFile: opaAuth.tokenFile,
    bridgeUrl: `https://${SERVICES.bridge}:${DEFAULT_PORTS.bridge}`,
    // llm_* API keys from the vault, as the agent (injector/providers/llm.ts), as npm start's injector reads them.
    llm: injectorLlmSection({ url: `https://${SERVICES.vault}:${DEFAULT_PORTS.vault}` }),
  });
  injector.listen.host = "0.0.0.0";
  const relative = (file: string) => path.relative(out, file);
  injector.tls = injector.tls && {
    ...injector.tls,
    cert_file: relative(injector.tls.cert_file),
    key_file: relative(injector.tls.key_file),
    client_ca_file: injector.tls.client_ca_file && relative(injector.tls.client_ca_file),
  };
  if (injector.jwt.jwks_file) injector.jwt.jwks_file = relative(injector.jwt.jwks_file);
  if (injector.oidc) injector.oidc.signing_keys_dir = relative(injector.oidc.signing_keys_dir);
  if (injector.opa.token_file) injector.opa.token_file = relative(injector.opa.token_file);
  // The injector's client certificate for the vault (llm) and the bridge (revocation).
  const relativeClient = <T extends { cert_file: string; key_file: string; ca_file: string }>(client: T): T =>
    ({ ...client, cert_file: relative(client.cert_file), key_file: relative(client.key_file), ca_file: relative(client.ca_file) });
  if (injector.llm) injector.llm = relativeClient(injector.llm);
  if (injector.revocation) {
    // Beside the config: a restarted injector keeps refusing what it learned.
    injector.revocation = { ...relativeClient(injector.revocation), state_file: "injector-revocations.json" };
  }
  return injector;
}
