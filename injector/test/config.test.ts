import path from "node:path";
import { describe, expect, it } from "vitest";
import { AZURE_RESOURCES, REGIONS } from "../../contract/index.ts";
import { BRIDGE_SPIFFE_ID, VAULT_SPIFFE_ID } from "../../support/dev-identity.ts";
import { ConfigError, loadConfigFile, parseConfig } from "../config.ts";
import { DEV_CONFIG_FILE } from "../dev-config.ts";
import { BUILT_IN_AZURE_SCOPES } from "../providers/azure.ts";
import { createExchanges } from "../providers/index.ts";
import { testIdentity } from "./helpers.ts";

const minimal = { jwt: { jwks_file: "jwks.json" }, trust_domains: ["hexr.local"], opa: { url: "http://127.0.0.1:8181" } };
/** Any cloud exchange needs the injector's own OIDC issuer. */
const withIssuer = { ...minimal, oidc: { issuer: "https://oidc.hexr.cloud", signing_keys_dir: "oidc-keys" } };
const ROLE = "arn:aws:iam::123456789012:role/r";
const neverMints = { mint: () => Promise.reject(new Error("not in this test")) };

function errorOf(raw: unknown): string {
  try {
    parseConfig(raw, "/etc/hexr");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("injector configuration", () => {
  it("fills in defaults and resolves file paths against the config's directory", () => {
    const config = parseConfig(minimal, "/etc/hexr");
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 8443 });
    expect(config.tls).toBeNull();
    expect(config.max_body_bytes).toBe(4096);
    expect(config.jwt).toMatchObject({
      jwks_file: "/etc/hexr/jwks.json", jwks_url: null, jwks_refresh_seconds: 60, audience: ["hexr-credential-injector"], issuer: null, clock_tolerance_seconds: 0, max_token_age_seconds: null,
    });
    expect(config.jwt.algorithms).not.toContain("none");
    expect(config.opa).toEqual({ url: "http://127.0.0.1:8181", decision_path: "hexr/exchange/decision", timeout_ms: 500, token_file: null });
    expect(config.default_regions).toEqual({ aws: "us-east-1", gcp: "us-central1", azure: "eastus", llm: "global" });
    // The contract's allow-list per provider, unless narrowed.
    expect(config.regions).toEqual(REGIONS);
    expect([config.oidc, config.aws, config.gcp, config.azure, config.llm, config.revocation]).toEqual([null, null, null, null, null, null]);
  });

  it("defaults AWS to 1-hour credentials from the default region's STS, minted tokens for sts.amazonaws.com", () => {
    const config = parseConfig({ ...withIssuer, default_regions: { aws: "eu-west-1" }, aws: { role_arns: { "*": ROLE } } });
    expect(config.aws).toEqual({
      sts_endpoint: null, sts_region: "eu-west-1", role_arns: { "*": ROLE }, duration_seconds: 3600, timeout_ms: 5000,
      token_audience: "sts.amazonaws.com", action_prefixes: {},
    });
  });

  it("defaults GCP's impersonated tokens to 1 hour", () => {
    const config = parseConfig({ ...withIssuer, gcp: { workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/p/providers/r" } });
    expect(config.gcp?.token_lifetime_seconds).toBe(3600);
  });

  it("takes caller rules that let a caller assert static identities, exactly or by prefix, without naming tenants", () => {
    const rule = {
      spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/dev-pod",
      static_identities: ["spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main", "spiffe://hexr.local/agent/acme-corp/content-crew/*", "spiffe://hexr.local/agent/globex/*"],
    };
    const config = parseConfig({ ...minimal, caller_rules: [rule, { spiffe_id: "spiffe://hexr.local/hexr-system/*", tenants: ["*"] }] });
    expect(config.caller_rules).toEqual([{ ...rule, tenants: [] }, { spiffe_id: "spiffe://hexr.local/hexr-system/*", tenants: ["*"], static_identities: [] }]);
    expect(parseConfig(config, "/elsewhere")).toEqual(config);
  });

  it("defaults the OIDC issuer's tokens to 5 minutes, its JWKS to {issuer}/keys, and no key generation", () => {
    const config = parseConfig({ ...minimal, oidc: { issuer: "https://oidc.hexr.cloud/", signing_keys_dir: "keys" } }, "/etc/hexr");
    expect(config.oidc).toEqual({
      issuer: "https://oidc.hexr.cloud", jwks_uri: "https://oidc.hexr.cloud/keys", signing_keys_dir: "/etc/hexr/keys",
      generate_key: false, token_lifetime_seconds: 300, discovery_listen: null,
    });
  });

  it("defaults each cloud's token audience: the GCP provider's resource name, Entra ID's token exchange audience", () => {
    const config = parseConfig({
      ...withIssuer,
      gcp: { workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/p/providers/r" },
      azure: { tenant_id: "t", client_ids: { "*": "c" } },
    });
    expect(config.gcp?.token_audience).toBe("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r");
    expect(config.azure?.token_audience).toBe("api://AzureADTokenExchange");
  });

  it("accepts a parsed configuration again unchanged", () => {
    const config = parseConfig({
      ...withIssuer,
      tls: { cert_file: "c.pem", key_file: "k.pem", client_ca_file: "ca.pem" },
      aws: { role_arns: { "*": ROLE } },
      gcp: { workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/p/providers/r" },
    }, "/etc/hexr");
    expect(parseConfig(config, "/elsewhere")).toEqual(config);
  });

  it("loads the shipped dev configuration", () => {
    const config = loadConfigFile(DEV_CONFIG_FILE);
    const devDir = path.resolve(path.dirname(DEV_CONFIG_FILE), "..", ".dev");
    expect(config.listen.port).toBe(15443);
    expect(config.tls).toEqual({ cert_file: path.join(devDir, "injector.pem"), key_file: path.join(devDir, "injector-key.pem"), client_ca_file: path.join(devDir, "ca.pem"), require_client_cert: true });
    expect(config.jwt).toMatchObject({ jwks_file: path.join(devDir, "jwks.json"), audience: ["hexr-credential-injector"], issuer: "https://oidc.hexr.local" });
    expect(config.oidc).toMatchObject({ issuer: "https://oidc.hexr.cloud", signing_keys_dir: path.join(devDir, "oidc-keys"), generate_key: true, token_lifetime_seconds: 300 });
    expect(config.oidc?.issuer).not.toBe(config.jwt.issuer);
    // One role per identity pattern, not one role for all: no "*" entry.
    expect(Object.keys(config.aws!.role_arns)).not.toContain("*");
    expect(new Set(Object.values(config.aws!.role_arns)).size).toBe(Object.keys(config.aws!.role_arns).length);
    // OPA only with the injector's token; revocations followed on the local stack's bridge.
    expect(config.opa.token_file).toBe(path.join(devDir, "opa", "opa-token"));
    expect(config.revocation).toEqual({
      bridge_url: "https://127.0.0.1:15090", bridge_spiffe_id: BRIDGE_SPIFFE_ID,
      cert_file: path.join(devDir, "injector.pem"), key_file: path.join(devDir, "injector-key.pem"), ca_file: path.join(devDir, "ca.pem"),
      poll_interval_ms: 1000, timeout_ms: 2000, max_log_staleness_ms: 30_000, deny_seconds: 3600, state_file: null,
    });
  });

  it("narrows regions per provider within the contract's, or lifts them with \"any\" (load tests)", () => {
    const config = parseConfig({ ...minimal, regions: { aws: ["eu-west-1", "eu-central-1"], gcp: "any" }, default_regions: { aws: "eu-west-1" } });
    expect(config.regions).toEqual({ aws: ["eu-west-1", "eu-central-1"], gcp: "any", azure: REGIONS.azure, llm: REGIONS.llm });
    expect(parseConfig({ ...minimal, regions: { aws: "any" }, default_regions: { aws: "zz-test-9" } }).default_regions.aws).toBe("zz-test-9");
    expect(parseConfig(config, "/elsewhere")).toEqual(config);
  });

  it("follows revocations with the TLS section's files by default, for the JWT-SVIDs' longest age", () => {
    const tls = { cert_file: "c.pem", key_file: "k.pem", client_ca_file: "ca.pem" };
    const revocation = { bridge_url: "https://bridge:15090/", bridge_spiffe_id: BRIDGE_SPIFFE_ID };
    const config = parseConfig({ ...minimal, tls, revocation }, "/etc/hexr");
    expect(config.revocation).toEqual({
      bridge_url: "https://bridge:15090", bridge_spiffe_id: BRIDGE_SPIFFE_ID, cert_file: "/etc/hexr/c.pem", key_file: "/etc/hexr/k.pem", ca_file: "/etc/hexr/ca.pem",
      poll_interval_ms: 1000, timeout_ms: 2000, max_log_staleness_ms: 30_000, deny_seconds: 3600, state_file: null,
    });
    // deny_seconds defaults to the age past which the injector refuses a JWT-SVID anyway.
    const aged = parseConfig({ ...minimal, jwt: { jwks_file: "j", max_token_age_seconds: 900 }, tls, revocation }, "/etc/hexr");
    expect([aged.jwt.max_token_age_seconds, aged.revocation?.deny_seconds]).toEqual([900, 900]);
    expect(parseConfig(config, "/elsewhere")).toEqual(config);
  });

  it("reads llm_* keys from the vault with the TLS section's files by default, the contract's secrets, 5-minute copies", () => {
    const tls = { cert_file: "c.pem", key_file: "k.pem", client_ca_file: "ca.pem" };
    // No OIDC issuer needed: nothing is minted for the vault, the agent's own JWT-SVID is forwarded.
    const config = parseConfig({ ...minimal, tls, llm: { vault_url: "https://vault:8445/", vault_spiffe_id: VAULT_SPIFFE_ID } }, "/etc/hexr");
    expect(config.llm).toEqual({
      vault_url: "https://vault:8445", vault_spiffe_id: VAULT_SPIFFE_ID,
      cert_file: "/etc/hexr/c.pem", key_file: "/etc/hexr/k.pem", ca_file: "/etc/hexr/ca.pem",
      key_secrets: { llm_openai: "OPENAI_API_KEY", llm_anthropic: "ANTHROPIC_API_KEY" }, key_ttl_seconds: 1500, timeout_ms: 3000,
    });
    expect(parseConfig(config, "/elsewhere")).toEqual(config);
    const own = parseConfig({
      ...minimal, extra_services: ["llm_mistral"],
      llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID, cert_file: "s.pem", key_file: "s-key.pem", ca_file: "b.pem",
        key_secrets: { llm_openai: "TEAM_OPENAI_KEY", llm_mistral: "MISTRAL_API_KEY" }, key_ttl_seconds: 900, timeout_ms: 500 },
    }, "/etc/hexr");
    expect(own.llm).toMatchObject({
      cert_file: "/etc/hexr/s.pem", key_ttl_seconds: 900, timeout_ms: 500,
      key_secrets: { llm_openai: "TEAM_OPENAI_KEY", llm_anthropic: "ANTHROPIC_API_KEY", llm_mistral: "MISTRAL_API_KEY" },
    });
  });

  it.each([
    [{ ...minimal, llm: { vault_spiffe_id: VAULT_SPIFFE_ID } }, "injector config: llm.vault_url is required"],
    [{ ...minimal, llm: { vault_url: "http://vault:8445", vault_spiffe_id: VAULT_SPIFFE_ID } }, "injector config: llm.vault_url must be an https URL (the vault serves mTLS only)"],
    [{ ...minimal, llm: { vault_url: "https://vault", vault_spiffe_id: "vault" } }, "injector config: llm.vault_spiffe_id must be a SPIFFE ID"],
    [{ ...minimal, llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID } }, "injector config: llm.cert_file is required (or tls.cert_file)"],
    [{ ...minimal, llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID, cert_file: "c", key_file: "k", ca_file: "ca", key_ttl_seconds: 5 } },
      "injector config: llm.key_ttl_seconds must be an integer from 30 to 86400"],
    [{ ...minimal, llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID, cert_file: "c", key_file: "k", ca_file: "ca", key_secrets: { aws_s3: "X" } } },
      'injector config: llm.key_secrets["aws_s3"] is not valid'],
    [{ ...minimal, llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID, cert_file: "c", key_file: "k", ca_file: "ca", key_secrets: { llm_openai: "my key" } } },
      'injector config: llm.key_secrets["llm_openai"] is not valid'],
  ])("rejects llm settings %j naming the field", (raw, message) => {
    expect(errorOf(raw)).toBe(message);
  });

  it("gives the agent's proof to the llm exchange only: no cloud exchange acts for the agent", async () => {
    const identity = await testIdentity();
    try {
      const { paths } = identity;
      const config = parseConfig({
        ...withIssuer,
        aws: { role_arns: { "*": ROLE } },
        gcp: { workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/p/providers/r" },
        azure: { tenant_id: "t", client_ids: { "*": "c" } },
        llm: { vault_url: "https://vault", vault_spiffe_id: VAULT_SPIFFE_ID, cert_file: paths.injectorCert, key_file: paths.injectorKey, ca_file: paths.ca },
      });
      const exchanges = createExchanges(config, neverMints);
      expect([...exchanges].map(([provider, exchange]) => [provider, exchange.actsForAgent === true])).toEqual([
        ["aws", false], ["gcp", false], ["azure", false], ["llm", true],
      ]);
      for (const exchange of exchanges.values()) exchange.close?.();
    } finally {
      await identity.remove();
    }
  });

  it.each([
    [{ ...minimal, regions: { aws: ["zz-nowhere-9"] } }, 'injector config: regions.aws[0] is not valid: "zz-nowhere-9"'],
    [{ ...minimal, regions: { aws: ["us-central1"] } }, 'injector config: regions.aws[0] is not valid: "us-central1"'],
    [{ ...minimal, regions: { aws: [] } }, 'injector config: regions.aws must name at least one region, or be "any"'],
    [{ ...minimal, regions: { aws: "all" } }, "injector config: regions.aws must be a list"],
    [{ ...minimal, regions: { oracle: "any" } }, "injector config: regions.oracle is not a provider (aws, gcp, azure, llm)"],
    [{ ...minimal, default_regions: { aws: "zz-nowhere-9" } }, "injector config: default_regions.aws must be one of the regions served for aws (regions.aws)"],
    [{ ...minimal, regions: { azure: ["westeurope"] } }, "injector config: default_regions.azure must be one of the regions served for azure (regions.azure)"],
    [{ ...minimal, revocation: { bridge_spiffe_id: BRIDGE_SPIFFE_ID } }, "injector config: revocation.bridge_url is required"],
    [{ ...minimal, revocation: { bridge_url: "http://bridge:15090", bridge_spiffe_id: BRIDGE_SPIFFE_ID } }, "injector config: revocation.bridge_url must be an https URL (the bridge serves mTLS only)"],
    [{ ...minimal, revocation: { bridge_url: "https://bridge", bridge_spiffe_id: "bridge" } }, "injector config: revocation.bridge_spiffe_id must be a SPIFFE ID"],
    [{ ...minimal, revocation: { bridge_url: "https://bridge", bridge_spiffe_id: BRIDGE_SPIFFE_ID } }, "injector config: revocation.cert_file is required (or tls.cert_file)"],
    [{ ...minimal, revocation: { bridge_url: "https://bridge", bridge_spiffe_id: BRIDGE_SPIFFE_ID, cert_file: "c", key_file: "k", ca_file: "ca", poll_interval_ms: 5000, max_log_staleness_ms: 1000 } },
      "injector config: revocation.max_log_staleness_ms must be at least poll_interval_ms"],
    [{ ...minimal, jwt: { jwks_file: "j", max_token_age_seconds: 7200 }, revocation: { bridge_url: "https://bridge", bridge_spiffe_id: BRIDGE_SPIFFE_ID, cert_file: "c", key_file: "k", ca_file: "ca", deny_seconds: 3600 } },
      "injector config: revocation.deny_seconds must be at least jwt.max_token_age_seconds"],
    [{ ...minimal, jwt: { jwks_file: "j", max_token_age_seconds: 10 } }, "injector config: jwt.max_token_age_seconds must be an integer from 60 to 604800"],
  ])("rejects regions and revocation settings %j naming the field", (raw, message) => {
    expect(errorOf(raw)).toBe(message);
  });

  it.each([
    [{ ...minimal, trust_domains: undefined }, "injector config: trust_domains is required"],
    [{ ...minimal, trust_domains: [] }, "injector config: trust_domains must name at least one trust domain"],
    [{ ...minimal, trust_domains: ["Bad Domain"] }, 'injector config: trust_domains[0] is not valid: "Bad Domain"'],
    [{ ...minimal, trust_domains: ["hexr.local", "hexr.local:8443"] }, 'injector config: trust_domains[1] is not valid: "hexr.local:8443"'],
    [{ ...minimal, opa: {} }, "injector config: opa.url is required"],
    [{ ...minimal, opa: { url: "ftp://x" } }, "injector config: opa.url must be an http(s) URL"],
    [{ ...minimal, jwt: {} }, "injector config: jwt.jwks_file or jwt.jwks_url is required (exactly one)"],
    [{ ...minimal, jwt: { jwks_file: "a", jwks_url: "https://x/keys" } }, "injector config: jwt.jwks_file or jwt.jwks_url is required (exactly one)"],
    [{ ...minimal, jwt: { jwks_file: "a", algorithms: ["HS256"] } }, 'injector config: jwt.algorithms[0] is not valid: "HS256"'],
    [{ ...minimal, tls: { cert_file: "c", key_file: "k" } }, "injector config: tls.client_ca_file is required when require_client_cert is true"],
    [{ ...minimal, listen: { port: 70000 } }, "injector config: listen.port must be an integer from 0 to 65535"],
    [{ ...minimal, default_regions: { gcp: "Europe West" } }, "injector config: default_regions.gcp must be a region matching ^[a-z0-9-]{1,32}$"],
    [{ ...minimal, default_regions: { aws: "x".repeat(33) } }, "injector config: default_regions.aws must be a region matching ^[a-z0-9-]{1,32}$"],
    [{ ...minimal, extra_services: ["oracle_db"] }, 'injector config: extra_services[0] is not valid: "oracle_db"'],
    [{ ...minimal, extra_services: ["aws_kinesis", "aws_-kinesis"] }, 'injector config: extra_services[1] is not valid: "aws_-kinesis"'],
    [{ ...minimal, extra_services: ["aws_s3:read"] }, 'injector config: extra_services[0] is not valid: "aws_s3:read"'],
    [{ ...minimal, log_level: "loud" }, "injector config: log_level must be one of fatal, error, warn, info, debug, trace, silent"],
    [{ ...minimal, caller_rules: [{ spiffe_id: "https://x", tenants: ["*"] }] }, "injector config: caller_rules[0].spiffe_id must be a SPIFFE ID, or a SPIFFE ID followed by /*"],
    [{ ...minimal, aws: { role_arns: {} } }, "injector config: aws.role_arns must have at least one entry"],
    [{ ...minimal, aws: { role_arns: { "*": "hexr-agent" } } }, 'injector config: aws.role_arns["*"] is not valid: "hexr-agent"'],
    [{ ...minimal, aws: { role_arns: { "a:b": "arn:aws:iam::123456789012:role/r" } } }, 'injector config: aws.role_arns["a:b"] is not valid'],
    [{ ...minimal, aws: { role_arns: { "acme-corp/..": "arn:aws:iam::123456789012:role/r" } } }, 'injector config: aws.role_arns["acme-corp/.."] is not valid'],
    [{ ...minimal, aws: { role_arns: { "t/a/r/x": "arn:aws:iam::123456789012:role/r" } } }, 'injector config: aws.role_arns["t/a/r/x"] is not valid'],
    [{ ...minimal, aws: { role_arns: { "*": "arn:aws:iam::123456789012:role/r" }, duration_seconds: 60 } }, "injector config: aws.duration_seconds must be an integer from 1800 to 43200"],
    // Inside the sidecar's refresh buffer from the start: the sidecar could never serve it.
    [{ ...minimal, aws: { role_arns: { "*": "arn:aws:iam::123456789012:role/r" }, duration_seconds: 900 } }, "injector config: aws.duration_seconds must be an integer from 1800 to 43200"],
    [{ ...minimal, gcp: { workload_identity_provider: "projects/1/locations/global/workloadIdentityPools/p/providers/r", token_lifetime_seconds: 1200 } },
      "injector config: gcp.token_lifetime_seconds must be an integer from 1800 to 43200"],
    [{ ...minimal, caller_rules: [{ spiffe_id: "spiffe://hexr.local/sidecar/x" }] }, "injector config: caller_rules[0].tenants is required"],
    ...[
      "spiffe://hexr.local/sidecar/acme-corp/dev-pod",
      "spiffe://evil.example/agent/acme-corp/a/main",
      "spiffe://hexr.local/agent/*",
      "spiffe://hexr.local/agent/acme-corp/a/main/*",
      "spiffe://hexr.local/agent/acme-corp/*/main",
      "spiffe://hexr.local/agent/acme-corp/a*",
    ].map((pattern): [unknown, string] => [
      { ...minimal, caller_rules: [{ spiffe_id: "spiffe://hexr.local/sidecar/x", static_identities: [pattern] }] },
      `injector config: caller_rules[0].static_identities[0] is not valid: ${JSON.stringify(pattern)}`,
    ]),
    [{ ...minimal, aws: { role_arns: { "*": ROLE } } }, "injector config: oidc is required when aws, gcp or azure exchanges are configured"],
    [{ ...withIssuer, aws: { role_arns: { "*": ROLE }, action_prefixes: { aws_s3: "S3:" } } }, 'injector config: aws.action_prefixes["aws_s3"] is not valid'],
    [{ ...withIssuer, aws: { role_arns: { "*": ROLE }, action_prefixes: { gcp_storage: "s3" } } }, 'injector config: aws.action_prefixes["gcp_storage"] is not valid'],
    [{ ...minimal, oidc: { signing_keys_dir: "k" } }, "injector config: oidc.issuer is required"],
    [{ ...minimal, oidc: { issuer: "http://oidc.hexr.cloud", signing_keys_dir: "k" } }, "injector config: oidc.issuer must be an https URL without query or fragment"],
    [{ ...minimal, oidc: { issuer: "https://oidc.hexr.cloud?x=1", signing_keys_dir: "k" } }, "injector config: oidc.issuer must be an https URL without query or fragment"],
    [{ ...minimal, oidc: { issuer: "https://oidc.hexr.cloud" } }, "injector config: oidc.signing_keys_dir is required"],
    [{ ...withIssuer, oidc: { ...withIssuer.oidc, token_lifetime_seconds: 30 } }, "injector config: oidc.token_lifetime_seconds must be an integer from 60 to 3600"],
    [{ ...withIssuer, oidc: { ...withIssuer.oidc, token_lifetime_seconds: 7200 } }, "injector config: oidc.token_lifetime_seconds must be an integer from 60 to 3600"],
    [{ ...withIssuer, oidc: { ...withIssuer.oidc, jwks_uri: "http://x/keys" } }, "injector config: oidc.jwks_uri must be an https URL without query or fragment"],
    [{ ...withIssuer, oidc: { ...withIssuer.oidc, discovery_listen: { port: -1 } } }, "injector config: oidc.discovery_listen.port must be an integer from 0 to 65535"],
    [{ ...withIssuer, jwt: { jwks_file: "a", issuer: "https://oidc.hexr.cloud" } }, "injector config: oidc.issuer must differ from jwt.issuer: the clouds must not trust the issuer of the agents' own tokens"],
    [{ ...minimal, gcp: { workload_identity_provider: "my-pool" } }, "injector config: gcp.workload_identity_provider must be projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"],
    [{ ...minimal, azure: { client_ids: { "*": "c" } } }, "injector config: azure.tenant_id is required"],
    [{ ...minimal, azure: { tenant_id: "t", client_ids: { "*": "c" }, scopes: { aws_s3: "https://x/.default" } } }, 'injector config: azure.scopes["aws_s3"] is not valid'],
  ])("rejects %j naming the field", (raw, message) => {
    expect(errorOf(raw)).toBe(message);
  });

  it("accepts extra services, trust domains and identity keys in the contract's grammars", () => {
    const config = parseConfig({
      ...withIssuer,
      trust_domains: ["hexr.local", "td-1.example_x"],
      extra_services: ["aws_my-svc", "gcp_9lives", "azure_key_vault"],
      aws: { role_arns: { "Acme/Writer.v2/editor_1": "arn:aws:iam::123456789012:role/r" } },
    });
    expect(config.trust_domains).toEqual(["hexr.local", "td-1.example_x"]);
    expect(config.extra_services).toEqual(["aws_my-svc", "gcp_9lives", "azure_key_vault"]);
    expect(config.aws?.role_arns).toEqual({ "Acme/Writer.v2/editor_1": "arn:aws:iam::123456789012:role/r" });
  });

  it("rejects an Azure extra service without a token scope when the exchanges are built", () => {
    const config = parseConfig({ ...withIssuer, extra_services: ["azure_keyvault"], azure: { tenant_id: "t", client_ids: { "*": "c" } } });
    expect(() => createExchanges(config, neverMints)).toThrow("injector config: azure.scopes has no token scope for azure_keyvault");
    const scoped = parseConfig({ ...withIssuer, extra_services: ["azure_keyvault"], azure: { tenant_id: "t", client_ids: { "*": "c" }, scopes: { azure_keyvault: "https://vault.azure.net/.default" } } });
    expect(createExchanges(scoped, neverMints).has("azure")).toBe(true);
  });

  it("scopes each Azure service of the contract as {resource}/.default, the contract's resource map being the one source", () => {
    expect(BUILT_IN_AZURE_SCOPES).toEqual({
      azure_storage: "https://storage.azure.com/.default",
      azure_cosmosdb: "https://cosmos.azure.com/.default",
      azure_openai: "https://cognitiveservices.azure.com/.default",
    });
    expect(Object.keys(BUILT_IN_AZURE_SCOPES)).toEqual(Object.keys(AZURE_RESOURCES));
  });

  it("accepts IAM action prefixes for AWS services in the config", () => {
    const config = parseConfig({ ...withIssuer, extra_services: ["aws_step_functions"], aws: { role_arns: { "*": ROLE }, action_prefixes: { aws_step_functions: "states" } } });
    expect(config.aws?.action_prefixes).toEqual({ aws_step_functions: "states" });
  });
});
