// The plugin configuration: one JSON document, validated completely in proxy_on_configure so that
// Envoy rejects a bad one at load time. Every field has a default that suits the local stack.
import { DEFAULT_REGIONS, REGIONS_AT, REGIONS_SIZE, VAULT_AUDIT_PATH, VAULT_SECRETS_PATH } from "../contract";
import { JsonKind, JsonValue, parseJson } from "../util/json";
import { AllowList } from "./allowlist";
import { CATALOG, isRegion, isServiceName, PROVIDERS } from "./catalog";
import { Reader } from "./config-reader";
import {
  AwsContainerDoorConfig, AzureManagedIdentityDoorConfig, GceMetadataDoorConfig, readAwsContainerDoor,
  readAzureManagedIdentityDoor, readGceMetadataDoor,
} from "./door-config";
import { IdentitySettings, IdentitySource, identitySourceNamed, jwtPayloadPath } from "./identity";
import { parseSpiffeId } from "./spiffe-id";

/** An Envoy cluster the filter calls itself (proxy_http_call), with the :authority it sends. */
export class UpstreamConfig {
  constructor(public cluster: string, public authority: string, public timeoutMs: u32) {}
}

/** Who may revoke cached credentials, where they ask, and how often every VM looks for revocations. */
export class RevocationConfig {
  constructor(
    public path: string,
    public adminSpiffeIds: string[],
    public pollIntervalMs: i64,
    /** Once the log has not been read for this long, entries stored before then are not served. */
    public maxLogStalenessMs: i64,
    /** How long a revoked identity is refused outright (the longest JWT-SVID lifetime). */
    public refuseSeconds: i64,
  ) {}
}

export class FilterConfig {
  exchangePath: string = "/exchange";
  maxBodyBytes: i32 = 4096;
  identity: IdentitySettings = new IdentitySettings();
  /** Indexed like PROVIDERS. */
  defaultRegions: string[] = DEFAULT_REGIONS.slice(0);
  /**
   * The regions an exchange may name, indexed like PROVIDERS: the contract's list unless configured
   * (narrower), and none at all with "any" (load tests only).
   */
  servedRegions: Array<string[] | null> = new Array<string[] | null>(PROVIDERS.length);
  anyRegion: bool[] = new Array<bool>(PROVIDERS.length);
  services: string[] = CATALOG.slice(0);
  resources: AllowList = new AllowList();
  /**
   * An entry is served only while now < expires_at − buffer. Above botocore's 15 minutes: an AWS
   * SDK re-fetches credentials with less than 15 minutes left on every call, so the sidecar must
   * never hand those out (MSAL's limit is 5 minutes, google-auth's under 4).
   */
  refreshBufferSeconds: i64 = 1200;
  /** Start a background re-exchange in the last this-many percent of an entry's servable life. */
  refreshAheadPercent: i64 = 25;
  /** How often expired L1 entries are cleared. */
  evictionIntervalSeconds: i64 = 60;
  /** How often a request waiting for another worker's exchange looks at L1 again. */
  coalescePollMs: i64 = 5;
  /** How often counters are handed to Envoy (filter/metrics.ts). */
  metricsFlushMs: i64 = 1000;
  /** Shared-data keys this Envoy may create for one identity, and in all (resolve/caps.ts). */
  maxKeysPerIdentity: i64 = 512;
  maxKeys: i64 = 200_000;
  /** Debug only: a request to this path traps the VM, to prove Envoy's failure policy. */
  debugTrapPath: string | null = null;
  injector: UpstreamConfig = new UpstreamConfig("hexr_injector", "credential-injector", 5000);
  injectorPath: string = "/exchange";
  l2: UpstreamConfig | null = null;
  revocation: RevocationConfig | null = null;
  /** The stock-SDK doors (input/door-config.ts); null: closed. */
  awsContainer: AwsContainerDoorConfig | null = null;
  gceMetadata: GceMetadataDoorConfig | null = null;
  azureManagedIdentity: AzureManagedIdentityDoorConfig | null = null;
  /** The vault door (doors/vault.ts): requests under the contract's vault paths go to the vault. */
  vault: bool = false;

  servesRegion(provider: string, region: string): bool {
    const index = PROVIDERS.indexOf(provider);
    if (index < 0) return false;
    if (this.anyRegion[index]) return true;
    const served = this.servedRegions[index];
    return served !== null ? served.includes(region) : inList(REGIONS_AT[index], REGIONS_SIZE[index], region);
  }

  defaultRegion(provider: string): string {
    const index = PROVIDERS.indexOf(provider);
    return index >= 0 ? this.defaultRegions[index] : "";
  }
}

/** `name` is one of the ","-separated names of the UTF-8 list at list[0, size) (names are ASCII). */
function inList(list: usize, size: i32, name: string): bool {
  let start = 0;
  while (start <= size) {
    let end = start;
    while (end < size && load<u8>(list + <usize>end) != 0x2c) end++;
    if (end - start == name.length) {
      let same = true;
      for (let i = 0; i < name.length && same; i++) same = <i32>load<u8>(list + <usize>(start + i)) == name.charCodeAt(i);
      if (same) return true;
    }
    start = end + 1;
  }
  return false;
}

/** The GCE metadata server's paths (fixed by the protocol: the SDKs only let the host change). */
export const GCE_METADATA_PREFIX = "/computeMetadata/";

export class ConfigResult {
  constructor(public config: FilterConfig | null, public error: string) {}
}

const KNOWN_FIELDS: string[] = [
  "exchange_path", "max_body_bytes", "identity_sources", "jwt_metadata_namespace", "jwt_payload_key",
  "static_spiffe_id", "trust_domains", "jwt_issuers", "jwt_audiences", "default_regions", "extra_services", "resources",
  "refresh_buffer_seconds", "refresh_ahead_percent", "eviction_interval_seconds", "coalesce_poll_ms", "metrics_flush_ms",
  "debug_trap_path", "injector", "l2", "revocation", "regions", "max_keys_per_identity", "max_keys",
  "aws_container", "gce_metadata", "azure_managed_identity", "vault",
  // The LLM filter's own section (llm/config.ts), in the same configuration so both filters of a
  // sidecar share one identity, injector, L2 and revocation setup.
  "llm",
];

export function parseConfig(bytes: ArrayBuffer): ConfigResult {
  const config = new FilterConfig();
  if (bytes.byteLength == 0) return new ConfigResult(config, "");
  const parsed = parseJson(String.UTF8.decode(bytes));
  const root = parsed.value;
  if (root === null) return new ConfigResult(null, "configuration is not valid JSON: " + parsed.error);
  if (root.kind != JsonKind.Object) return new ConfigResult(null, "configuration must be a JSON object");
  for (let i = 0; i < root.keys.length; i++) {
    if (!KNOWN_FIELDS.includes(root.keys[i])) return new ConfigResult(null, "unknown field '" + root.keys[i] + "'");
  }

  const read = new Reader();
  config.exchangePath = read.string(root.member("exchange_path"), "exchange_path", config.exchangePath);
  if (!config.exchangePath.startsWith("/")) read.fail("exchange_path", "must start with '/'");
  config.maxBodyBytes = <i32>read.integer(root.member("max_body_bytes"), "max_body_bytes", config.maxBodyBytes, 64, 65536);
  config.refreshBufferSeconds = read.integer(root.member("refresh_buffer_seconds"), "refresh_buffer_seconds", config.refreshBufferSeconds, 0, 43200);
  config.refreshAheadPercent = read.integer(root.member("refresh_ahead_percent"), "refresh_ahead_percent", config.refreshAheadPercent, 0, 90);
  config.evictionIntervalSeconds = read.integer(root.member("eviction_interval_seconds"), "eviction_interval_seconds", config.evictionIntervalSeconds, 1, 3600);
  config.coalescePollMs = read.integer(root.member("coalesce_poll_ms"), "coalesce_poll_ms", config.coalescePollMs, 1, 1000);
  config.metricsFlushMs = read.integer(root.member("metrics_flush_ms"), "metrics_flush_ms", config.metricsFlushMs, 10, 60000);
  config.maxKeysPerIdentity = read.integer(root.member("max_keys_per_identity"), "max_keys_per_identity", config.maxKeysPerIdentity, 2, 1_000_000);
  config.maxKeys = read.integer(root.member("max_keys"), "max_keys", config.maxKeys, 16, 100_000_000);
  const trapPath = root.member("debug_trap_path");
  if (trapPath !== null) config.debugTrapPath = read.string(trapPath, "debug_trap_path", "");
  readIdentity(root, config.identity, read);
  readServedRegions(root.member("regions"), config, read);
  readRegions(root.member("default_regions"), config, read);
  for (let i = 0; i < PROVIDERS.length; i++) {
    if (!config.servesRegion(PROVIDERS[i], config.defaultRegions[i])) {
      read.fail("default_regions." + PROVIDERS[i], "must be one of the regions served for " + PROVIDERS[i]);
    }
  }
  readExtraServices(root.member("extra_services"), config, read);
  readResources(root.member("resources"), config, read);
  config.awsContainer = readAwsContainerDoor(root.member("aws_container"), config.services, read);
  config.gceMetadata = readGceMetadataDoor(root.member("gce_metadata"), config.services, read);
  config.azureManagedIdentity = readAzureManagedIdentityDoor(root.member("azure_managed_identity"), config.services, read);
  config.vault = readSwitch(root.member("vault"), "vault", read);
  readInjector(root.member("injector"), config, read);
  readL2(root.member("l2"), config, read);
  readRevocation(root.member("revocation"), config, read);
  checkDoorPaths(config, read);
  return read.error.length > 0 ? new ConfigResult(null, read.error) : new ConfigResult(config, "");
}

function readIdentity(root: JsonValue, identity: IdentitySettings, read: Reader): void {
  const namespace = read.string(root.member("jwt_metadata_namespace"), "jwt_metadata_namespace", "envoy.filters.http.jwt_authn");
  const payloadKey = read.string(root.member("jwt_payload_key"), "jwt_payload_key", "jwt_payload");
  identity.jwtPayloadPath = jwtPayloadPath(namespace, payloadKey);
  identity.jwtIssuers = read.strings(root.member("jwt_issuers"), "jwt_issuers");
  identity.jwtAudiences = read.strings(root.member("jwt_audiences"), "jwt_audiences");
  identity.trustDomains = read.strings(root.member("trust_domains"), "trust_domains");
  const sourcesValue = root.member("identity_sources");
  if (sourcesValue !== null) {
    const names = read.strings(sourcesValue, "identity_sources");
    const sources = new Array<IdentitySource>();
    for (let i = 0; i < names.length; i++) {
      const source = identitySourceNamed(names[i]);
      if (source >= 0) sources.push(<IdentitySource>source);
      else read.fail("identity_sources[" + i.toString() + "]", "must be one of mtls, jwt, static");
    }
    if (sources.length == 0) read.fail("identity_sources", "must name at least one source");
    identity.sources = sources;
  }
  const staticValue = root.member("static_spiffe_id");
  if (staticValue !== null) {
    const id = read.string(staticValue, "static_spiffe_id", "");
    if (parseSpiffeId(id) === null) read.fail("static_spiffe_id", "must be spiffe://{trust-domain}/agent/{tenant}/{agent}/{role}");
    identity.staticSpiffeId = id;
  }
  // No trust domain is accepted unless named: an identity verified against some other domain's
  // bundle (a misconfigured validator, a second jwt_authn provider) must not pass by default.
  const verified = identity.sources.includes(IdentitySource.Mtls) || identity.sources.includes(IdentitySource.Jwt);
  if (verified && identity.trustDomains.length == 0) {
    read.fail("trust_domains", "must name the trust domains whose identities are accepted");
  }
  if (identity.sources.includes(IdentitySource.Static) && identity.staticSpiffeId === null) {
    read.fail("static_spiffe_id", "is required when identity_sources contains static");
  }
}

function readRegions(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("default_regions", "must be an object of provider to region");
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const provider = value.keys[i];
    const field = "default_regions." + provider;
    const index = PROVIDERS.indexOf(provider);
    if (index < 0) {
      read.fail(field, "is not a provider (aws, gcp, azure)");
      continue;
    }
    const region = read.string(value.items[i], field, "");
    if (!isRegion(region)) read.fail(field, "is not a region (see the region grammar in contract/contract.json)");
    else config.defaultRegions[index] = region;
  }
}

/**
 * `regions`: provider → the regions exchanges may name (a narrower list than the contract's), or
 * "any" (no allow-list: every key one identity names stays in L1, so only for load tests).
 */
function readServedRegions(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("regions", "must be an object of provider to a list of regions, or \"any\"");
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const provider = value.keys[i];
    const field = "regions." + provider;
    const index = PROVIDERS.indexOf(provider);
    if (index < 0) {
      read.fail(field, "is not a provider (aws, gcp, azure)");
      continue;
    }
    const item = value.items[i];
    if (item.kind == JsonKind.String && item.text == "any") {
      config.anyRegion[index] = true;
      continue;
    }
    const regions = read.strings(item, field);
    if (regions.length == 0) read.fail(field, "must name at least one region, or be \"any\"");
    for (let j = 0; j < regions.length; j++) {
      if (!isRegion(regions[j])) read.fail(field + "[" + j.toString() + "]", "is not a region (see the region grammar in contract/contract.json)");
    }
    config.servedRegions[index] = regions;
  }
}

function readExtraServices(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  const extras = read.strings(value, "extra_services");
  for (let i = 0; i < extras.length; i++) {
    if (!isServiceName(extras[i])) {
      read.fail("extra_services[" + i.toString() + "]", "must be {aws|gcp|azure}_{name} (see the service grammar in contract/contract.json)");
    } else if (!config.services.includes(extras[i])) {
      config.services.push(extras[i]);
    }
  }
}

/** Strips an optional scope: "aws_s3:read" allows aws_s3 here; the scope itself is OPA's business. */
function serviceOfResource(resource: string): string {
  const colon = resource.indexOf(":");
  return colon < 0 ? resource : resource.substring(0, colon);
}

function countSlashes(text: string): i32 {
  let count = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) == 0x2f) count++;
  return count;
}

function readResources(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("resources", "must be an object of \"{tenant}/{agent}[/{role}]\" to a list of services");
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const key = value.keys[i];
    const field = "resources." + key;
    const depth = countSlashes(key) + 1;
    if (depth < 2 || depth > 3 || key.includes("//") || key.startsWith("/") || key.endsWith("/")) {
      read.fail(field, "key must be {tenant}/{agent} or {tenant}/{agent}/{role}");
      continue;
    }
    const resources = read.strings(value.items[i], field);
    const services = new Array<string>();
    for (let j = 0; j < resources.length; j++) {
      const service = serviceOfResource(resources[j]);
      if (!config.services.includes(service)) {
        read.fail(field + "[" + j.toString() + "]", "names a service that is not in the catalog or extra_services");
      }
      services.push(service);
    }
    config.resources.add(key, services);
  }
}

function readUpstream(value: JsonValue, field: string, fallback: UpstreamConfig, read: Reader): UpstreamConfig {
  const cluster = read.string(value.member("cluster"), field + ".cluster", fallback.cluster);
  const authority = read.string(value.member("authority"), field + ".authority", cluster);
  const timeoutMs = <u32>read.integer(value.member("timeout_ms"), field + ".timeout_ms", fallback.timeoutMs, 1, 60000);
  return new UpstreamConfig(cluster, authority, timeoutMs);
}

function readInjector(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("injector", "must be an object {cluster, authority, path, timeout_ms}");
    return;
  }
  config.injector = readUpstream(value, "injector", config.injector, read);
  config.injectorPath = read.string(value.member("path"), "injector.path", config.injectorPath);
  if (!config.injectorPath.startsWith("/")) read.fail("injector.path", "must start with '/'");
}

function readL2(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null || value.kind == JsonKind.Null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("l2", "must be an object {cluster, authority, timeout_ms} or null");
    return;
  }
  if (value.member("cluster") === null) read.fail("l2.cluster", "is required");
  config.l2 = readUpstream(value, "l2", new UpstreamConfig("", "", 50), read);
}

function readRevocation(value: JsonValue | null, config: FilterConfig, read: Reader): void {
  if (value === null || value.kind == JsonKind.Null) return;
  if (value.kind != JsonKind.Object) {
    read.fail("revocation", "must be an object {path, admin_spiffe_ids, poll_interval_ms} or null");
    return;
  }
  // Revocations travel through L2: the bridge purges Valkey and keeps the log every sidecar polls.
  if (config.l2 === null) read.fail("revocation", "needs l2 (revocations are shared through the bridge)");
  const path = read.string(value.member("path"), "revocation.path", "/revoke");
  if (!path.startsWith("/") || path == config.exchangePath) read.fail("revocation.path", "must start with '/' and differ from exchange_path");
  const admins = read.strings(value.member("admin_spiffe_ids"), "revocation.admin_spiffe_ids");
  if (admins.length == 0) read.fail("revocation.admin_spiffe_ids", "must name at least one admin SPIFFE ID");
  for (let i = 0; i < admins.length; i++) {
    if (parseSpiffeId(admins[i]) === null) read.fail("revocation.admin_spiffe_ids[" + i.toString() + "]", "must be an agent SPIFFE ID");
  }
  const pollMs = read.integer(value.member("poll_interval_ms"), "revocation.poll_interval_ms", 1000, 100, 60000);
  const stalenessMs = read.integer(value.member("max_log_staleness_ms"), "revocation.max_log_staleness_ms", 30000, 1000, 3_600_000);
  if (stalenessMs < pollMs) read.fail("revocation.max_log_staleness_ms", "must be at least poll_interval_ms");
  const refuseSeconds = read.integer(value.member("deny_seconds"), "revocation.deny_seconds", 3600, 1, 604_800);
  config.revocation = new RevocationConfig(path, admins, pollMs, stalenessMs, refuseSeconds);
}

/** true, false, or absent (false). */
function readSwitch(value: JsonValue | null, field: string, read: Reader): bool {
  if (value === null || value.kind == JsonKind.Null) return false;
  if (value.kind != JsonKind.Bool) read.fail(field, "must be true or false");
  return value.boolean;
}

/** Every door path is its own: a request path opens exactly one door (filter/routes.ts). */
function checkDoorPaths(config: FilterConfig, read: Reader): void {
  const taken = [config.exchangePath];
  const revocation = config.revocation;
  if (revocation !== null) taken.push(revocation.path);
  const aws = config.awsContainer;
  if (aws !== null) {
    if (taken.includes(aws.path) || isGcePath(aws.path)) read.fail("aws_container.path", "must differ from every other door's path");
    taken.push(aws.path);
  }
  const azure = config.azureManagedIdentity;
  if (azure !== null) {
    if (taken.includes(azure.path) || isGcePath(azure.path)) read.fail("azure_managed_identity.path", "must differ from every other door's path");
    taken.push(azure.path);
  }
  if (!config.vault) return;
  for (let i = 0; i < taken.length; i++) {
    if (isVaultPath(taken[i])) read.fail("vault", "the vault's paths (" + VAULT_SECRETS_PATH + ", " + VAULT_AUDIT_PATH + ") must differ from every other door's path");
  }
}

/** `path` is one of the vault's paths or under one (doors/vault.ts forwards those). */
export function isVaultPath(path: string): bool {
  return isUnder(path, VAULT_SECRETS_PATH) || isUnder(path, VAULT_AUDIT_PATH);
}

function isUnder(path: string, prefix: string): bool {
  return path == prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) == 0x2f);
}

function isGcePath(path: string): bool {
  return path == "/" || path.startsWith(GCE_METADATA_PREFIX);
}
