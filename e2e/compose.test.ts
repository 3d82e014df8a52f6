// docker-compose.yml cannot run here (no Docker engine), so it is checked as data: the same
// parts, ports, versions and Envoy configuration as the native stack (the vault door and the LLM
// route included), every file Envoy's configuration names is one the envoy container mounts, and
// what setup renders is run where it can be: Envoy's configuration through `envoy --mode
// validate` with the mounts mapped onto this machine, the vault on its compose configuration, the
// injector's vault client on its compose configuration, and the emulator's compose entry point.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  APP_DIR,
  CONTAINER_FILES,
  ENVOY_ADMIN_SOCKET_IN_CONTAINER,
  ENVOY_CONFIG_IN_CONTAINER,
  ENVOY_MOUNTS,
  LLM_PROVIDER_URL,
  RENDERED_DIR,
  SERVICES,
  VAULT_FILES,
  renderComposeEnvoyConfig,
} from "../stack/compose.ts";
import { validateEnvoyConfig } from "../stack/envoy.ts";
import { loadConfigFile } from "../injector/config.ts";
import { createLogger } from "../injector/log.ts";
import { VaultKeyExchange } from "../injector/providers/llm.ts";
import { loadConfigFile as loadVaultConfigFile } from "../vault/config.ts";
import { startVault, type RunningVault } from "../vault/server.ts";
import { HEADERS, parseAgentSpiffeId } from "../contract/index.ts";
import {
  DEFAULT_SIDECAR_SPIFFE_ID,
  INJECTOR_SPIFFE_ID,
  VAULT_SPIFFE_ID,
  ensureDevIdentity,
  mintJwtSvid,
  type DevIdentityPaths,
} from "../support/dev-identity.ts";
import { DEFAULT_PORTS, LLM_ADMIN_ID, LLM_EMULATOR_KEYS, LLM_EMULATOR_PORT, VAULT_ADMIN_ID } from "../stack/index.ts";
import { loadFilterConfiguration, loadLlmSection } from "../stack/render.ts";
import { projectRoot, tools } from "../support/tools.ts";

interface ComposeService {
  image: string;
  command?: string[];
  entrypoint?: string[];
  volumes?: string[];
  ports?: string[];
  expose?: string[];
  network_mode?: string;
  working_dir?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(path.join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;
/** The services that run the project's own code from the working tree in the Node image. */
const PROJECT_SERVICES = ["setup", "bridge", "injector", "vault", "llm-provider"];
/** An agent that stores its key and calls the LLM route in the header's example (policy/data.json grants it llm_openai). */
const LLM_AGENT_ID = "spiffe://hexr.local/agent/acme-corp/smart-agent/main";

let identity: DevIdentityPaths;
let scratch: string;

beforeAll(async () => {
  identity = await ensureDevIdentity();
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-compose-"));
  // Exactly what the setup container runs, here in the project directory (idempotent).
  execFileSync(process.execPath, ["--import", "tsx", services.setup.command!.at(-1)!], { cwd: projectRoot, stdio: "pipe" });
}, 120_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The value after `flag` in a command line. */
function argument(command: string[] | undefined, flag: string): string | undefined {
  const index = command?.indexOf(flag) ?? -1;
  return index >= 0 ? command![index + 1] : undefined;
}

function imageTag(service: string): [string, string] {
  const [name, tag] = services[service].image.split(":");
  return [name, tag];
}

/** Every value of a `filename` key, and every access log `path`, anywhere in the configuration. */
function namedFiles(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const item of node) namedFiles(item, found);
  } else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "filename" && typeof value === "string") found.push(value);
      else if (key === "path" && typeof value === "string" && (node as { "@type"?: string })["@type"]?.includes("access_loggers")) found.push(value);
      else namedFiles(value, found);
    }
  }
  return found;
}

function agentHttpRoutes(config: any): any[] {
  const listener = (config.static_resources.listeners as any[]).find((l) => l.name === "agent_http");
  return listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
}

function clusterNamed(config: any, name: string): any {
  return (config.static_resources.clusters as any[]).find((c) => c.name === name);
}

describe("docker-compose.yml", () => {
  it("has the native stack's parts, from official images at the versions the native stack runs", () => {
    expect(Object.keys(services).sort()).toEqual(["bridge", "envoy", "injector", "llm-provider", "moto", "opa", "setup", "valkey", "vault"]);

    const envoyVersion = /\/(\d+\.\d+\.\d+)\//.exec(execFileSync(tools.envoy(), ["--version"], { encoding: "utf8" }))![1];
    expect(imageTag("envoy")).toEqual(["envoyproxy/envoy", `v${envoyVersion}`]);

    const opaVersion = /^OPA_VERSION=v(\S+)$/m.exec(readFileSync(path.join(projectRoot, "scripts", "bootstrap.sh"), "utf8"))![1];
    expect(imageTag("opa")).toEqual(["openpolicyagent/opa", opaVersion]);

    const motoVersion = /^moto\[server\]==(\S+)$/m.exec(readFileSync(path.join(projectRoot, "requirements.txt"), "utf8"))![1];
    expect(imageTag("moto")).toEqual(["motoserver/moto", motoVersion]);

    expect(imageTag("valkey")[0]).toBe("valkey/valkey");
    const nodeImage = services.setup.image;
    for (const name of PROJECT_SERVICES) {
      expect(imageTag(name)[0], name).toBe("node");
      expect(services[name].image, name).toBe(nodeImage);
      expect(services[name].volumes, name).toContain(`./:${APP_DIR}`);
      expect(services[name].working_dir, name).toBe(APP_DIR);
    }
  });

  it("runs the project's services from the same entry points as the native stack", () => {
    const script = (name: string) => services[name].command!.find((part) => part.endsWith(".ts"))!;
    expect(script("setup")).toBe("stack/compose-setup.ts");
    expect(script("bridge")).toBe("bridge/main.ts");
    expect(script("injector")).toBe("injector/main.ts");
    expect(script("vault")).toBe("vault/main.ts");
    expect(script("llm-provider")).toBe("stack/compose-llm-provider.ts");
    for (const name of PROJECT_SERVICES) {
      expect(services[name].command!.slice(0, 3), name).toEqual(["node", "--import", "tsx"]);
      expect(existsSync(path.join(projectRoot, script(name))), name).toBe(true);
    }
    expect(argument(services.injector.command, "--config")).toBe(`${RENDERED_DIR}/injector.json`);
    expect(argument(services.vault.command, "--config")).toBe(VAULT_FILES.configFile);
    // The emulator's own defaults (compose's network address, npm start's port) are the ones Envoy dials.
    expect(argument(services["llm-provider"].command, "--port")).toBeUndefined();
    expect(argument(services["llm-provider"].command, "--host")).toBeUndefined();
    expect(LLM_PROVIDER_URL).toBe(`http://${SERVICES.llmProvider}:${LLM_EMULATOR_PORT}`);
    expect(services[SERVICES.llmProvider]).toBeDefined();
    expect(services[SERVICES.vault]).toBeDefined();
  });

  it("uses the native stack's ports inside the network and publishes only Envoy's and moto's, on 127.0.0.1", () => {
    expect(argument(services.valkey.command, "--port")).toBe(String(DEFAULT_PORTS.valkey));
    expect(argument(services.opa.command, "--addr")).toBe(`0.0.0.0:${DEFAULT_PORTS.opa}`);
    expect(argument(services.moto.entrypoint, "-p")).toBe(String(DEFAULT_PORTS.moto));
    expect(argument(services.bridge.command, "--port")).toBe(String(DEFAULT_PORTS.bridge));
    expect(argument(services.bridge.command, "--valkey")).toBe(`redis://${SERVICES.valkey}:${DEFAULT_PORTS.valkey}`);

    const published = (port: number) => `127.0.0.1:${port}:${port}`;
    // Envoy's agent listeners and its stats listener; its admin is a Unix socket in the container.
    expect(services.envoy.ports).toEqual([published(DEFAULT_PORTS.agent), published(DEFAULT_PORTS.agentMtls), published(DEFAULT_PORTS.stats)]);
    expect(services.moto.ports).toEqual([published(DEFAULT_PORTS.moto)]);
    // Everything else, the vault and the LLM provider emulator included, on the compose network only.
    const others = Object.keys(services).filter((name) => name !== "envoy" && name !== "moto");
    expect(others).toEqual(expect.arrayContaining(["vault", "llm-provider"]));
    for (const name of others) {
      expect(services[name].ports, name).toBeUndefined();
      expect(services[name].network_mode, name).toBeUndefined();
    }
    for (const name of Object.keys(services)) expect(services[name].network_mode, name).toBeUndefined();
  });

  it("runs Envoy on the rendered sidecar template, the vault door and the LLM route on, and mounts every file that configuration names", () => {
    expect(argument(services.envoy.command, "-c")).toBe(ENVOY_CONFIG_IN_CONTAINER);
    for (const mount of Object.values(ENVOY_MOUNTS)) expect(services.envoy.volumes).toContain(`${mount.host}:${mount.container}:ro`);
    expect(ENVOY_MOUNTS.rendered.host).toBe(`./${RENDERED_DIR}`);

    const config = parse(renderComposeEnvoyConfig());
    const files = namedFiles(config);
    expect(files).toContain(CONTAINER_FILES.wasmPath);
    expect(files).toContain(CONTAINER_FILES.llmWasmPath);
    expect(files).toContain(CONTAINER_FILES.accessLogPath);
    for (const file of files) {
      if (file === "/dev/stdout") continue;
      const mount = Object.values(ENVOY_MOUNTS).find((m) => file.startsWith(m.container + "/"));
      expect(mount, `${file} is not in a mounted directory`).toBeDefined();
      // The file on the host side of the mount (the rendered directory's are written by setup).
      const onHost = path.join(projectRoot, mount!.host, file.slice(mount!.container.length + 1));
      expect(existsSync(onHost), `${file} (${onHost})`).toBe(true);
    }

    // Same listeners and upstreams as the native stack, by compose service name.
    const listeners = (config.static_resources.listeners as any[]).map((l) => l.address.socket_address);
    expect(listeners).toEqual([
      { address: "0.0.0.0", port_value: DEFAULT_PORTS.agent },
      { address: "0.0.0.0", port_value: DEFAULT_PORTS.agentMtls },
      { address: "0.0.0.0", port_value: DEFAULT_PORTS.stats },
    ]);
    // The admin on a Unix socket inside the container (0600 = 384), mounted nowhere, so no published port reaches it.
    expect(config.admin.address).toEqual({ pipe: { path: ENVOY_ADMIN_SOCKET_IN_CONTAINER, mode: 0o600 } });
    const mounted = Object.values(ENVOY_MOUNTS).map((mount) => mount.container + "/");
    expect(mounted.some((dir) => ENVOY_ADMIN_SOCKET_IN_CONTAINER.startsWith(dir))).toBe(false);
    // Upstreams over the network (the other cluster is the stats listener's way to the admin socket).
    const clusters = config.static_resources.clusters as any[];
    const addresses = clusters.map((c) => c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address);
    expect(addresses.filter((a) => a.pipe)).toEqual([{ pipe: { path: ENVOY_ADMIN_SOCKET_IN_CONTAINER } }]);
    const upstreams = Object.fromEntries(clusters.filter((c) => !c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe)
      .map((c) => [c.name, c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address]));
    const llmProvider = { address: SERVICES.llmProvider, port_value: LLM_EMULATOR_PORT };
    expect(upstreams).toEqual({
      hexr_injector: { address: SERVICES.injector, port_value: DEFAULT_PORTS.injector },
      hexr_bridge: { address: SERVICES.bridge, port_value: DEFAULT_PORTS.bridge },
      hexr_vault: { address: SERVICES.vault, port_value: DEFAULT_PORTS.vault },
      hexr_llm_openai: llmProvider,
      hexr_llm_anthropic: llmProvider,
      hexr_llm_azure_openai: llmProvider,
    });
    for (const { address } of Object.values(upstreams) as { address: string }[]) expect(services[address], address).toBeDefined();

    // The filter configuration: the native stack's, the vault door on, the LLM section with its admin.
    const manager = (config.static_resources.listeners as any[])[0].filter_chains[0].filters[0].typed_config;
    const exchange = (manager.http_filters as any[]).find((f) => f.name === "envoy.filters.http.wasm").typed_config.config;
    const { vault, llm, ...rest } = JSON.parse(exchange.configuration.value);
    expect(rest).toEqual(loadFilterConfiguration());
    expect(vault).toBe(true);
    expect(llm).toEqual({ ...loadLlmSection(), admin_spiffe_ids: [LLM_ADMIN_ID] });

    // The vault door: /v1/secrets and /v1/audit to the vault over mTLS, its certificate checked by its SPIFFE ID.
    const routes = agentHttpRoutes(config);
    expect(routes.filter((r) => r.route?.cluster === "hexr_vault").map((r) => r.match)).toEqual([
      { path_separated_prefix: "/v1/secrets" }, { path_separated_prefix: "/v1/audit" },
    ]);
    const vaultTls = clusterNamed(config, "hexr_vault").transport_socket.typed_config;
    expect(vaultTls.sni).toBe(SERVICES.vault);
    expect(vaultTls.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([{ san_type: "URI", matcher: { exact: VAULT_SPIFFE_ID } }]);
    expect(vaultTls.common_tls_context.tls_certificates[0].certificate_chain.filename).toBe(`${ENVOY_MOUNTS.identity.container}/sidecar.pem`);

    // The LLM route: its filter (the LLM module, off but on its routes), one route per provider to the emulator.
    const llmFilter = (manager.http_filters as any[]).find((f) => f.name === "hexr.llm");
    expect(llmFilter.disabled).toBe(true);
    expect(llmFilter.typed_config.config.vm_config.code.local.filename).toBe(CONTAINER_FILES.llmWasmPath);
    expect(path.posix.basename(CONTAINER_FILES.llmWasmPath!)).toBe("llm_filter.wasm");
    for (const provider of ["openai", "anthropic", "azure_openai"]) {
      const route = routes.find((r) => r.match.prefix === `/v1/llm/${provider}/`);
      expect(route?.route, provider).toMatchObject({ cluster: `hexr_llm_${provider}`, host_rewrite_literal: `${SERVICES.llmProvider}:${LLM_EMULATOR_PORT}` });
      expect(route.typed_per_filter_config["hexr.llm"], provider).toBeDefined();
      // Plain HTTP on the compose network, as to npm start's loopback emulator.
      expect(clusterNamed(config, `hexr_llm_${provider}`).transport_socket, provider).toBeUndefined();
    }
    expect(routes.find((r) => r.match.path === "/v1/llm/usage")).toBeDefined();
  });

  it("has an Envoy configuration the real Envoy accepts, with the containers' mounts mapped onto this machine", async () => {
    // The exact rendering the envoy container reads, each mounted directory replaced by its host side:
    // a file outside every mount would be left pointing at /etc/hexr/... and fail validation.
    let rendered = readFileSync(path.join(projectRoot, RENDERED_DIR, "envoy.yaml"), "utf8");
    expect(rendered).toBe(renderComposeEnvoyConfig());
    for (const mount of Object.values(ENVOY_MOUNTS)) rendered = rendered.replaceAll(`${mount.container}/`, `${path.join(projectRoot, mount.host)}/`);
    expect(rendered).not.toContain("/etc/hexr/");
    // Envoy's stdout in the container; here a file (this process may have no /dev/stdout to open).
    rendered = rendered.replaceAll(`path: "${CONTAINER_FILES.accessLogPath}"`, `path: "${path.join(scratch, "access.log")}"`);
    rendered = rendered.replaceAll(ENVOY_ADMIN_SOCKET_IN_CONTAINER, path.join(scratch, "admin.sock"));
    const file = path.join(scratch, "compose-envoy.yaml");
    writeFileSync(file, rendered);
    await expect(validateEnvoyConfig(file)).resolves.toMatch(/OK/);
    // Not a formality: the LLM filter's module is loaded (a missing one is refused).
    const broken = path.join(scratch, "compose-envoy-broken.yaml");
    writeFileSync(broken, rendered.replaceAll(path.join(projectRoot, "build", "llm_filter.wasm"), path.join(scratch, "missing.wasm")));
    await expect(validateEnvoyConfig(broken)).rejects.toThrow(/Invalid path: .*missing\.wasm/);
  }, 120_000);

  it("has a setup step that writes a valid injector configuration for the compose network, llm_* keys from the vault", () => {
    const config = loadConfigFile(path.join(projectRoot, RENDERED_DIR, "injector.json"));
    expect(config.listen).toEqual({ host: "0.0.0.0", port: DEFAULT_PORTS.injector });
    expect(config.opa.url).toBe(`http://${SERVICES.opa}:${DEFAULT_PORTS.opa}`);
    expect(config.aws?.sts_endpoint).toBe(`http://${SERVICES.moto}:${DEFAULT_PORTS.moto}`);
    for (const file of [config.tls!.cert_file, config.tls!.key_file, config.tls!.client_ca_file!, config.jwt.jwks_file!]) {
      expect(existsSync(file), file).toBe(true);
    }
    expect(config.llm).toMatchObject({
      vault_url: `https://${SERVICES.vault}:${DEFAULT_PORTS.vault}`,
      vault_spiffe_id: VAULT_SPIFFE_ID,
      key_secrets: { llm_openai: "OPENAI_API_KEY", llm_anthropic: "ANTHROPIC_API_KEY" },
      cert_file: identity.injectorCert,
      key_file: identity.injectorKey,
      ca_file: identity.ca,
    });
    // Relative in the file, so the same file works in the container (/app) and on the host.
    const raw = JSON.parse(readFileSync(path.join(projectRoot, RENDERED_DIR, "injector.json"), "utf8"));
    for (const key of ["cert_file", "key_file", "ca_file"]) expect(path.isAbsolute(raw.llm[key]), key).toBe(false);
  });

  it("has a setup step that writes the vault's configuration and X.509-SVID, its data in a volume only the vault mounts", () => {
    const config = loadVaultConfigFile(path.join(projectRoot, VAULT_FILES.configFile));
    expect(config.listen).toEqual({ host: "0.0.0.0", port: DEFAULT_PORTS.vault });
    expect(config.tls).toEqual({
      cert_file: path.join(projectRoot, VAULT_FILES.tlsCert),
      key_file: path.join(projectRoot, VAULT_FILES.tlsKey),
      client_ca_file: identity.ca,
    });
    for (const file of Object.values(config.tls)) expect(existsSync(file), file).toBe(true);
    // The same JWT-SVID keys Envoy's jwt_authn and the injector check.
    expect(config.jwt.jwks_file).toBe(identity.jwks);
    // The sidecar (for its tenant and hexr-system's admins) and the injector (every tenant) may call it.
    expect(config.caller_rules.map((rule) => [rule.spiffe_id, rule.tenants])).toEqual([
      ["spiffe://hexr.local/sidecar/acme-corp/*", ["acme-corp", "hexr-system"]],
      [INJECTOR_SPIFFE_ID, ["*"]],
    ]);
    expect(config.admins).toEqual([VAULT_ADMIN_ID]);
    // Its certificate: the SPIFFE ID Envoy and the injector require, the name they dial, from the dev CA.
    const cert = new X509Certificate(readFileSync(config.tls.cert_file));
    expect(cert.subjectAltName).toContain(`URI:${VAULT_SPIFFE_ID}`);
    expect(cert.subjectAltName).toContain(`DNS:${SERVICES.vault}`);
    expect(cert.verify(new X509Certificate(readFileSync(identity.ca)).publicKey)).toBe(true);

    // Its store and KEK in the vault-data volume, mounted into the vault container and no other.
    const data = VAULT_FILES.dataDirInContainer;
    expect(config.store).toEqual({ engine: "sqlite", path: `${data}/vault.sqlite3` });
    expect(config.kek.keys.every((key) => "file" in key && key.file.startsWith(`${data}/`))).toBe(true);
    expect(compose.volumes).toHaveProperty(VAULT_FILES.dataVolume);
    const volumeMount = `${VAULT_FILES.dataVolume}:${data}`;
    for (const [name, service] of Object.entries(services)) {
      const mounts = (service.volumes ?? []).filter((volume) => volume.startsWith(`${VAULT_FILES.dataVolume}:`));
      expect(mounts, name).toEqual(name === "vault" ? [volumeMount] : []);
    }
    // Not inside the working tree that every project container mounts.
    expect(data.startsWith(`${APP_DIR}/`)).toBe(false);
  });

  it("wires the vault as npm start does: the sidecar stores an agent's key, the injector reads it as that agent", async () => {
    // The vault on its compose configuration, only its address and data moved onto this machine.
    const file = path.join(projectRoot, VAULT_FILES.configFile);
    const raw = JSON.parse(readFileSync(file, "utf8"));
    const dataDir = path.join(scratch, "vault-data");
    const local = {
      ...raw,
      listen: { host: "127.0.0.1", port: 0 },
      store: { ...raw.store, path: raw.store.path.replace(VAULT_FILES.dataDirInContainer, dataDir) },
      kek: { ...raw.kek, keys: raw.kek.keys.map((key: { id: string; file: string }) => ({ ...key, file: key.file.replace(VAULT_FILES.dataDirInContainer, dataDir) })) },
      log_level: "silent",
    };
    const vault: RunningVault = await startVault(local, { baseDir: path.dirname(file) });
    const injectorConfig = loadConfigFile(path.join(projectRoot, RENDERED_DIR, "injector.json"));
    const keys = new VaultKeyExchange({ ...injectorConfig.llm!, vault_url: `https://127.0.0.1:${vault.port}` }, createLogger("silent"));
    try {
      const token = await mintJwtSvid(LLM_AGENT_ID);
      const key = LLM_EMULATOR_KEYS.openai[0];
      // What the sidecar's vault door sends (Envoy's hexr_vault cluster: the sidecar's SVID, SNI `vault`).
      const stored = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = https.request({
          host: "127.0.0.1",
          port: vault.port,
          servername: SERVICES.vault,
          method: "PUT",
          path: "/v1/secrets/OPENAI_API_KEY",
          cert: readFileSync(identity.sidecarCert),
          key: readFileSync(identity.sidecarKey),
          ca: readFileSync(identity.ca),
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${token}`,
            [HEADERS.spiffe_id]: LLM_AGENT_ID,
            [HEADERS.identity_source]: "jwt",
          },
        }, (response) => {
          let body = "";
          response.on("data", (chunk) => (body += chunk));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        });
        request.once("error", reject);
        request.end(JSON.stringify({ value: key }));
      });
      expect(stored.status, stored.body).toBe(201);
      expect(DEFAULT_SIDECAR_SPIFFE_ID).toMatch(/^spiffe:\/\/hexr\.local\/sidecar\/acme-corp\//);

      // The injector's llm_* exchange with its compose configuration (its SVID, the vault's SPIFFE ID).
      const issued = await keys.exchange(
        { identity: parseAgentSpiffeId(LLM_AGENT_ID)!, service: "llm_openai", region: "global", scopes: [] },
        { source: "jwt", jwtSvid: token } as never,
      );
      expect(issued.credentials.api_key).toBe(key);
    } finally {
      keys.close();
      await vault.close();
    }
  }, 60_000);

  it("runs the LLM provider emulator as npm start does: the samples' keys accepted, others refused", async () => {
    const command = services["llm-provider"].command!;
    // Its compose command, on a free loopback port here (in compose: 0.0.0.0:LLM_EMULATOR_PORT).
    const child: ChildProcess = spawn(process.execPath, [...command.slice(1), "--host", "127.0.0.1", "--port", "0"], { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (chunk) => {
          out += chunk;
          const match = /listening on (http:\/\/\S+)/.exec(out);
          if (match) resolve(match[1]);
        });
        child.once("exit", (code) => reject(new Error(`the emulator exited (${code}) before listening`)));
      });
      const chat = (apiKey: string) => fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
      });
      const accepted = await chat(LLM_EMULATOR_KEYS.openai[0]);
      expect(accepted.status).toBe(200);
      expect((await accepted.json()).usage).toBeDefined();
      expect((await chat("sk-proj-not-a-sample-key")).status).toBe(401);
      const anthropic = await fetch(`${url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": LLM_EMULATOR_KEYS.anthropic[0], "anthropic-version": "2023-06-01", "content-type": "application/json" },
        body: JSON.stringify({ model: "claude-haiku-4-5", max_tokens: 16, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(anthropic.status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
  }, 60_000);

  it("starts everything after setup has written the configuration", () => {
    for (const name of ["bridge", "injector", "vault", "envoy"]) {
      expect(services[name].depends_on?.setup, name).toEqual({ condition: "service_completed_successfully" });
    }
    expect(Object.keys(services.envoy.depends_on!).sort()).toEqual(["bridge", "injector", "llm-provider", "setup", "vault"]);
    expect(Object.keys(services.injector.depends_on!).sort()).toEqual(["moto", "opa", "setup", "vault"]);
    expect(Object.keys(services.bridge.depends_on!).sort()).toEqual(["setup", "valkey"]);
    expect(Object.keys(services.vault.depends_on!).sort()).toEqual(["setup"]);
    // The emulator needs nothing setup writes.
    expect(services["llm-provider"].depends_on).toBeUndefined();
  });
});
