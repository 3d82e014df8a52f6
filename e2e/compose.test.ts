// docker-compose.yml cannot run here (no Docker engine), so it is checked as data: the same
// parts, ports, versions and Envoy configuration as the native stack, and every file Envoy's
// configuration names is one the envoy container mounts.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import {
  APP_DIR,
  CONTAINER_FILES,
  ENVOY_ADMIN_SOCKET_IN_CONTAINER,
  ENVOY_CONFIG_IN_CONTAINER,
  ENVOY_MOUNTS,
  RENDERED_DIR,
  SERVICES,
  renderComposeEnvoyConfig,
} from "../stack/compose.ts";
import { loadConfigFile } from "../injector/config.ts";
import { DEFAULT_PORTS } from "../stack/index.ts";
import { projectRoot, tools } from "../support/tools.ts";

interface ComposeService {
  image: string;
  command?: string[];
  entrypoint?: string[];
  volumes?: string[];
  ports?: string[];
  working_dir?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(path.join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const services = compose.services;

/** The value after `flag` in a command line. */
function argument(command: string[] | undefined, flag: string): string | undefined {
  const index = command?.indexOf(flag) ?? -1;
  return index >= 0 ? command![index + 1] : undefined;
}

function imageTag(service: string): [string, string] {
  const [name, tag] = services[service].image.split(":");
  return [name, tag];
}

describe("docker-compose.yml", () => {
  it("has the native stack's parts, from official images at the versions the native stack runs", () => {
    expect(Object.keys(services).sort()).toEqual(["bridge", "envoy", "injector", "moto", "opa", "setup", "valkey"]);

    const envoyVersion = /\/(\d+\.\d+\.\d+)\//.exec(execFileSync(tools.envoy(), ["--version"], { encoding: "utf8" }))![1];
    expect(imageTag("envoy")).toEqual(["envoyproxy/envoy", `v${envoyVersion}`]);

    const opaVersion = /^OPA_VERSION=v(\S+)$/m.exec(readFileSync(path.join(projectRoot, "scripts", "bootstrap.sh"), "utf8"))![1];
    expect(imageTag("opa")).toEqual(["openpolicyagent/opa", opaVersion]);

    const motoVersion = /^moto\[server\]==(\S+)$/m.exec(readFileSync(path.join(projectRoot, "requirements.txt"), "utf8"))![1];
    expect(imageTag("moto")).toEqual(["motoserver/moto", motoVersion]);

    expect(imageTag("valkey")[0]).toBe("valkey/valkey");
    for (const name of ["setup", "bridge", "injector"]) {
      expect(imageTag(name)[0]).toBe("node");
      expect(services[name].volumes).toContain(`./:${APP_DIR}`);
      expect(services[name].working_dir).toBe(APP_DIR);
    }
  });

  it("runs the project's services from the same entry points as the native stack", () => {
    const script = (name: string) => services[name].command!.find((part) => part.endsWith(".ts"))!;
    expect(script("setup")).toBe("stack/compose-setup.ts");
    expect(script("bridge")).toBe("bridge/main.ts");
    expect(script("injector")).toBe("injector/main.ts");
    for (const name of ["setup", "bridge", "injector"]) expect(existsSync(path.join(projectRoot, script(name)))).toBe(true);
    expect(argument(services.injector.command, "--config")).toBe(`${RENDERED_DIR}/injector.json`);
  });

  it("uses the native stack's ports inside the network and publishes Envoy's on 127.0.0.1", () => {
    expect(argument(services.valkey.command, "--port")).toBe(String(DEFAULT_PORTS.valkey));
    expect(argument(services.opa.command, "--addr")).toBe(`0.0.0.0:${DEFAULT_PORTS.opa}`);
    expect(argument(services.moto.entrypoint, "-p")).toBe(String(DEFAULT_PORTS.moto));
    expect(argument(services.bridge.command, "--port")).toBe(String(DEFAULT_PORTS.bridge));
    expect(argument(services.bridge.command, "--valkey")).toBe(`redis://${SERVICES.valkey}:${DEFAULT_PORTS.valkey}`);

    const published = (port: number) => `127.0.0.1:${port}:${port}`;
    // Envoy's agent listeners and its stats listener; its admin is a Unix socket in the container.
    expect(services.envoy.ports).toEqual([published(DEFAULT_PORTS.agent), published(DEFAULT_PORTS.agentMtls), published(DEFAULT_PORTS.stats)]);
    expect(services.moto.ports).toEqual([published(DEFAULT_PORTS.moto)]);
    for (const name of ["setup", "valkey", "opa", "bridge", "injector"]) expect(services[name].ports).toBeUndefined();
  });

  it("runs Envoy on the rendered sidecar template, and mounts every file that configuration names", () => {
    expect(argument(services.envoy.command, "-c")).toBe(ENVOY_CONFIG_IN_CONTAINER);
    for (const mount of Object.values(ENVOY_MOUNTS)) expect(services.envoy.volumes).toContain(`${mount.host}:${mount.container}:ro`);
    expect(ENVOY_MOUNTS.rendered.host).toBe(`./${RENDERED_DIR}`);

    const rendered = renderComposeEnvoyConfig();
    const config = parse(rendered);
    const files = [...rendered.matchAll(/filename: "([^"]+)"/g)].map((match) => match[1]);
    files.push(config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].typed_config.path);
    expect(files).toContain(CONTAINER_FILES.wasmPath);
    const mounted = Object.values(ENVOY_MOUNTS).map((mount) => mount.container + "/");
    for (const file of files) {
      expect(file === "/dev/stdout" || mounted.some((dir) => file.startsWith(dir)), file).toBe(true);
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
    expect(mounted.some((dir) => ENVOY_ADMIN_SOCKET_IN_CONTAINER.startsWith(dir))).toBe(false);
    // Upstreams over the network (the other cluster is the stats listener's way to the admin socket).
    const addresses = (config.static_resources.clusters as any[]).map((c) => c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address);
    expect(addresses.filter((a) => a.pipe)).toEqual([{ pipe: { path: ENVOY_ADMIN_SOCKET_IN_CONTAINER } }]);
    const upstreams = addresses.filter((a) => !a.pipe).map((a) => a.socket_address);
    expect(upstreams).toEqual([
      { address: SERVICES.injector, port_value: DEFAULT_PORTS.injector },
      { address: SERVICES.bridge, port_value: DEFAULT_PORTS.bridge },
    ]);
    for (const name of Object.values(SERVICES)) expect(services[name]).toBeDefined();
  });

  it("has a setup step that writes a valid injector configuration for the compose network", () => {
    // Exactly what the setup container runs, here in the project directory (idempotent).
    execFileSync(process.execPath, ["--import", "tsx", services.setup.command!.at(-1)!], { cwd: projectRoot, stdio: "pipe" });
    const config = loadConfigFile(path.join(projectRoot, RENDERED_DIR, "injector.json"));
    expect(config.listen).toEqual({ host: "0.0.0.0", port: DEFAULT_PORTS.injector });
    expect(config.opa.url).toBe(`http://${SERVICES.opa}:${DEFAULT_PORTS.opa}`);
    expect(config.aws?.sts_endpoint).toBe(`http://${SERVICES.moto}:${DEFAULT_PORTS.moto}`);
    for (const file of [config.tls!.cert_file, config.tls!.key_file, config.tls!.client_ca_file!, config.jwt.jwks_file!]) {
      expect(existsSync(file), file).toBe(true);
    }
    expect(readFileSync(path.join(projectRoot, RENDERED_DIR, "envoy.yaml"), "utf8")).toBe(renderComposeEnvoyConfig());
  });

  it("starts everything after setup has written the configuration", () => {
    for (const name of ["bridge", "injector", "envoy"]) {
      expect(services[name].depends_on?.setup).toEqual({ condition: "service_completed_successfully" });
    }
    expect(Object.keys(services.envoy.depends_on!).sort()).toEqual(["bridge", "injector", "setup"]);
    expect(Object.keys(services.injector.depends_on!).sort()).toEqual(["moto", "opa", "setup"]);
    expect(Object.keys(services.bridge.depends_on!).sort()).toEqual(["setup", "valkey"]);
  });
});
