// Every Envoy configuration the project ships passes `envoy --mode validate` with the real binary
// and the real .wasm (which runs the filter's proxy_on_configure), and the template keeps the
// properties the security of the sidecar rests on.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDevIdentity, type DevIdentityPaths } from "../support/dev-identity.ts";
import { renderComposeEnvoyConfig } from "../stack/compose.ts";
import { renderSidecarInto, validateEnvoyConfig } from "../stack/envoy.ts";
import { DEFAULT_PORTS, defaultWasmPath, nativeSidecarValues, withOverrides } from "../stack/index.ts";
import { loadFilterConfiguration, renderTemplate, type FilterConfiguration } from "../stack/render.ts";

let identity: DevIdentityPaths;
let dir: string;

beforeAll(async () => {
  identity = await ensureDevIdentity();
  dir = mkdtempSync(path.join(tmpdir(), "hexr-envoy-config-"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function renderNative(name: string, filterConfiguration: FilterConfiguration = loadFilterConfiguration()): string {
  const values = nativeSidecarValues({ sidecarPorts: DEFAULT_PORTS, ports: DEFAULT_PORTS, identity, wasmPath: defaultWasmPath, filterConfiguration });
  return renderSidecarInto(path.join(dir, name), name, values).configPath;
}

/** The compose rendering, with the container paths mapped onto this machine's files. */
function renderComposeLocally(): string {
  const file = path.join(dir, "compose-envoy.yaml");
  writeFileSync(file, renderComposeEnvoyConfig({ identityDir: identity.dir, wasmPath: defaultWasmPath, accessLogPath: path.join(dir, "compose-access.log") }));
  return file;
}

describe("envoy --mode validate", () => {
  it("accepts the native sidecar config (npm start, e2e, benchmark)", async () => {
    await expect(validateEnvoyConfig(renderNative("native"))).resolves.toMatch(/OK/);
  });

  it("accepts the native sidecar config without L2", async () => {
    await expect(validateEnvoyConfig(renderNative("no-l2", withOverrides(loadFilterConfiguration(), { l2: null })))).resolves.toMatch(/OK/);
  });

  it("accepts the docker-compose rendering of the same template", async () => {
    await expect(validateEnvoyConfig(renderComposeLocally())).resolves.toMatch(/OK/);
  });

  it("is not a formality: the filter's configure step rejects a bad plugin configuration", async () => {
    const broken = renderNative("broken", withOverrides(loadFilterConfiguration(), { identity_sources: ["mtls", "telepathy"] }));
    await expect(validateEnvoyConfig(broken)).rejects.toThrow(/identity_sources/);
  });
});

describe("the sidecar template", () => {
  it("refuses to render with a value missing or one it has no place for", () => {
    expect(() => renderTemplate("port: {{port}}", {})).toThrow(/missing: port/);
    expect(() => renderTemplate("port: {{port}}", { port: 1, extra: 2 })).toThrow(/no placeholder for: extra/);
    expect(renderTemplate("port: {{port}}", { port: 15080 })).toBe("port: 15080");
  });

  it("keeps jwt_authn, the exchange filter, buffer and router in that order on both listeners, set up safely", async () => {
    const config = parse(await readFile(renderNative("inspect"), "utf8"));
    const listeners = config.static_resources.listeners as any[];
    expect(listeners.map((l) => [l.name, l.address.socket_address.port_value])).toEqual([
      ["agent_http", DEFAULT_PORTS.agent],
      ["agent_mtls", DEFAULT_PORTS.agentMtls],
    ]);
    for (const listener of listeners) {
      const chain = listener.filter_chains[0];
      const hcm = chain.filters[0].typed_config;
      const filters = hcm.http_filters as any[];
      expect(filters.map((f) => f.name)).toEqual([
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.wasm",
        "envoy.filters.http.buffer",
        "envoy.filters.http.router",
      ]);

      const jwt = filters[0].typed_config;
      // The provider is named (so its verified-token cache is used), and a missing or failed token
      // still reaches the exchange filter, which answers with the contract's JSON 401.
      expect(jwt.rules).toEqual([{
        match: { prefix: "/" },
        requires: { requires_any: { requirements: [{ provider_name: "jwt_svid" }, { allow_missing_or_failed: {} }] } },
      }]);
      expect(jwt.providers.jwt_svid.jwt_cache_config).toEqual({ jwt_cache_size: 1000 });
      const provider = Object.values(jwt.providers)[0] as any;
      expect(provider).toMatchObject({
        issuer: "https://oidc.hexr.local",
        audiences: ["hexr-credential-injector"],
        local_jwks: { filename: identity.jwks },
        forward: true,
        payload_in_metadata: "jwt_payload",
        from_headers: [{ name: "authorization", value_prefix: "Bearer " }],
      });
      expect(provider.from_params).toBeUndefined();

      const wasm = filters[1].typed_config.config;
      expect(wasm.failure_policy).toBe("FAIL_RELOAD");
      expect(wasm.vm_config.runtime).toBe("envoy.wasm.runtime.v8");
      expect(wasm.vm_config.code.local.filename).toBe(defaultWasmPath);
      expect(JSON.parse(wasm.configuration.value)).toEqual(loadFilterConfiguration());

      // Envoy's own error replies are mapped to the contract's JSON; the filter's are left alone.
      const mappers = hcm.local_reply_config.mappers as any[];
      expect(mappers.map((m) => m.body_format_override.content_type)).toEqual(["application/json", "application/json"]);
      for (const mapper of mappers) expect(mapper.filter.extension_filter.typed_config.expression).toMatch(/'hexr_credential', 'hexr_exchange_rejected'/);

      // The exchange route never forwards to the injector: the filter calls it itself.
      const routes = hcm.route_config.virtual_hosts[0].routes as any[];
      expect(routes[0].match).toEqual({ path: "/exchange" });
      expect(routes.every((route) => route.route === undefined && route.direct_response !== undefined)).toBe(true);
    }
    const mtls = listeners[1].filter_chains[0].transport_socket.typed_config;
    expect(mtls.require_client_certificate).toBe(true);
    expect(mtls.common_tls_context.validation_context.trusted_ca.filename).toBe(identity.ca);

    const clusters = Object.fromEntries((config.static_resources.clusters as any[]).map((c) => [c.name, c]));
    const filter = loadFilterConfiguration() as { injector: { cluster: string }; l2: { cluster: string } };
    expect(Object.keys(clusters).sort()).toEqual([filter.injector.cluster, filter.l2.cluster].sort());
    const injectorTls = clusters[filter.injector.cluster].transport_socket.typed_config.common_tls_context;
    expect(injectorTls.tls_certificates[0].certificate_chain.filename).toBe(identity.sidecarCert);
    expect(injectorTls.validation_context.match_typed_subject_alt_names).toEqual([
      { san_type: "URI", matcher: { exact: "spiffe://hexr.local/hexr-system/credential-injector" } },
    ]);
  });
});
