// The plugin configuration: every field optional but trust_domains (with the mtls or jwt source,
// the default; configure() below names the test identities' domains unless a case names its own);
// an invalid document makes proxy_on_configure
// return false after an error/critical log line naming the field, so Envoy rejects it at load.

import { describe, expect, it } from "vitest";
import { LogLevel, ProxyWasmHost } from "./host/index.ts";
import { AGENT, BRIDGE_CLUSTER, INJECTOR, L2_CONFIG, WASM_PATH, withTrustDomains } from "./support/exchange.ts";

function configure(configuration: string | object) {
  const host = new ProxyWasmHost({ wasm: WASM_PATH, pluginConfiguration: withTrustDomains(configuration), clusters: [INJECTOR.cluster, BRIDGE_CLUSTER] });
  const vm = host.startVm();
  return { host, vm };
}

describe("valid configurations", () => {
  it("accepts an object naming only its trust domains (all other fields default)", () => {
    const { vm } = configure({});
    expect(vm.vmStarted).toBe(true);
    expect(vm.configured).toBe(true);
  });

  it("accepts every field set", () => {
    const { vm, host } = configure({
      exchange_path: "/exchange",
      max_body_bytes: 8192,
      identity_sources: ["mtls", "jwt", "static"],
      jwt_metadata_namespace: "envoy.filters.http.jwt_authn",
      jwt_payload_key: "jwt_payload",
      static_spiffe_id: AGENT.dataPipeline,
      trust_domains: ["hexr.local"],
      default_regions: { aws: "us-west-2", gcp: "europe-west1", azure: "westus" },
      extra_services: ["aws_textract", "gcp_translate", "azure_keyvault"],
      resources: { "acme-corp/data-pipeline": ["aws_s3", "aws_s3:read"], "acme-corp/data-pipeline/main": [] },
      refresh_buffer_seconds: 300,
      injector: { cluster: INJECTOR.cluster, authority: INJECTOR.authority, path: INJECTOR.path, timeout_ms: 2000 },
      l2: L2_CONFIG,
      refresh_ahead_percent: 90,
      eviction_interval_seconds: 3600,
      coalesce_poll_ms: 1000,
      debug_trap_path: "/__trap",
      revocation: { path: "/revoke", admin_spiffe_ids: [AGENT.reporter], poll_interval_ms: 1000 },
    });
    expect(vm.configured, host.logMessages().join("\n")).toBe(true);
  });
});

describe("invalid configurations are rejected, naming the field", () => {
  it.each([
    ["bad JSON", "{identity_sources: [mtls]}", /json/i],
    ["not an object", "[]", /object|json|configuration/i],
    ["an unknown identity source", { identity_sources: ["kerberos"] }, /identity_sources/],
    ["identity_sources of the wrong type", { identity_sources: "mtls" }, /identity_sources/],
    ["static without static_spiffe_id", { identity_sources: ["static"] }, /static_spiffe_id/],
    ["exchange_path of the wrong type", { exchange_path: 5 }, /exchange_path/],
    ["max_body_bytes of the wrong type", { max_body_bytes: "4096" }, /max_body_bytes/],
    ["refresh_buffer_seconds of the wrong type", { refresh_buffer_seconds: "600" }, /refresh_buffer_seconds/],
    ["jwt_metadata_namespace of the wrong type", { jwt_metadata_namespace: 1 }, /jwt_metadata_namespace/],
    ["jwt_payload_key of the wrong type", { jwt_payload_key: ["jwt_payload"] }, /jwt_payload_key/],
    ["trust_domains of the wrong type", { trust_domains: "hexr.local" }, /trust_domains/],
    ["default_regions of the wrong type", { default_regions: ["us-east-1"] }, /default_regions/],
    ["extra_services of the wrong type", { extra_services: "aws_textract" }, /extra_services/],
    ["an extra service without a provider", { extra_services: ["textract"] }, /extra_services/],
    ["an extra service of an unknown provider", { extra_services: ["ibm_cos"] }, /extra_services/],
    ["resources of the wrong type", { resources: ["aws_s3"] }, /resources/],
    ["a resources entry that is not a list", { resources: { "acme-corp/data-pipeline": "aws_s3" } }, /resources/],
    ["l2 of the wrong type", { l2: BRIDGE_CLUSTER }, /l2/],
    ["an l2 cluster of the wrong type", { l2: { ...L2_CONFIG, cluster: 5 } }, /l2|cluster/],
    ["injector of the wrong type", { injector: "hexr_injector" }, /injector/],
    ["refresh_ahead_percent over 90", { refresh_ahead_percent: 91 }, /refresh_ahead_percent/],
    ["a negative refresh_ahead_percent", { refresh_ahead_percent: -1 }, /refresh_ahead_percent/],
    ["refresh_ahead_percent of the wrong type", { refresh_ahead_percent: "25" }, /refresh_ahead_percent/],
    ["eviction_interval_seconds of 0", { eviction_interval_seconds: 0 }, /eviction_interval_seconds/],
    ["eviction_interval_seconds over 3600", { eviction_interval_seconds: 3601 }, /eviction_interval_seconds/],
    ["coalesce_poll_ms of 0", { coalesce_poll_ms: 0 }, /coalesce_poll_ms/],
    ["coalesce_poll_ms over 1000", { coalesce_poll_ms: 1001 }, /coalesce_poll_ms/],
    ["debug_trap_path of the wrong type", { debug_trap_path: true }, /debug_trap_path/],
    ["revocation without l2", { revocation: { path: "/revoke", admin_spiffe_ids: [AGENT.reporter], poll_interval_ms: 1000 } }, /revocation|l2/],
    ["revocation of the wrong type", { l2: L2_CONFIG, revocation: "on" }, /revocation/],
    ["aws_container of the wrong type", { aws_container: "/v1/aws/credentials" }, /aws_container/],
    ["an aws_container service of another cloud", { aws_container: { service: "gcp_storage" } }, /aws_container.service/],
    ["an aws_container path with a query", { aws_container: { path: "/creds?x=1" } }, /aws_container.path/],
    ["an aws_container path that is the exchange path", { aws_container: { path: "/exchange" } }, /aws_container.path/],
    ["an aws_container path in the metadata tree", { aws_container: { path: "/computeMetadata/v1/x" } }, /aws_container.path/],
    ["gce_metadata without project_id", { gce_metadata: {} }, /gce_metadata.project_id/],
    ["a gce_metadata project_id with a quote", { gce_metadata: { project_id: "a\"b" } }, /gce_metadata.project_id/],
    ["a gce_metadata service of another cloud", { gce_metadata: { project_id: "p-1", service: "aws_s3" } }, /gce_metadata.service/],
    ["a gce_metadata numeric_project_id with letters", { gce_metadata: { project_id: "p-1", numeric_project_id: "12a" } }, /numeric_project_id/],
    ["a gce_metadata email with a space", { gce_metadata: { project_id: "p-1", service_account_email: "a b@c" } }, /service_account_email/],
    ["azure_managed_identity without identity_header", { azure_managed_identity: {} }, /identity_header/],
    ["a short azure identity_header", { azure_managed_identity: { identity_header: "short" } }, /identity_header/],
    ["an azure resource for a service of another cloud", { azure_managed_identity: { identity_header: "0123456789abcdef0", resources: { aws_s3: "https://s3" } } }, /resources/],
    ["an azure resource with a trailing slash", { extra_services: ["azure_vault"], azure_managed_identity: { identity_header: "0123456789abcdef0", resources: { azure_vault: "https://vault.azure.net/" } } }, /resources/],
    ["an azure path of \"/\"", { azure_managed_identity: { path: "/", identity_header: "0123456789abcdef0" } }, /azure_managed_identity.path/],
    ["revocation admins of the wrong type", { l2: L2_CONFIG, revocation: { path: "/revoke", admin_spiffe_ids: AGENT.reporter } }, /admin_spiffe_ids|revocation/],
    ["a vault switch that is not a boolean", { vault: "yes" }, /vault/],
    ["an exchange path under the vault's", { vault: true, exchange_path: "/v1/secrets/x" }, /vault/],
    ["an aws_container path that is the vault's audit path", { vault: true, aws_container: { path: "/v1/audit" } }, /vault/],
  ])("rejects %s", (_, configuration, field) => {
    const { host, vm } = configure(configuration);
    expect(vm.configured).toBe(false);
    const errors = host.logs.filter((record) => record.level >= LogLevel.Error).map((record) => record.message);
    expect(errors.some((message) => field.test(message)), `error logs: ${JSON.stringify(errors)}`).toBe(true);
  });
});
