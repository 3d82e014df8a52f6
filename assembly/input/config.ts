// The plugin configuration: one JSON document, validated completely in proxy_on_configure so that
// Envoy rejects a bad one at load time. Every field has a default that suits the local stack.
import { DEFAULT_REGIONS, REGIONS_AT, REGIONS_SIZE, VAULT_AUDIT_PATH, VAULT_SECRETS_PATH } from "../contract";
import { JsonKind, JsonValue, parseJson } from "../util/json";
import { message } from "../util/message";
import { AllowList } from "./allowlist";
import { CATALOG, isRegion, isServiceName, PROVIDERS } from "./catalog";
import { itemName, Reader } from "./config-reader";
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
    /** L2's bridge: it purges Valkey and keeps the log every sidecar polls. */
    public bridge: UpstreamConfig,
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

export function parseConfig(bytes: ArrayBuffer): ConfigResult {
  const config = new FilterConfig();
  if (bytes.byteLength == 0) return new ConfigResult(config, "");
  const parsed = parseJson(String.UTF8.decode(bytes));
  const root = parsed.value;
  if (root === null) return new ConfigResult(null, message("configuration is not valid JSON: ") + parsed.error);
  if (root.kind != JsonKind.Object) return new ConfigResult(null, message("configuration must be a JSON object"));

  // Every field is read (a field no reader asks for is unknown: refused before any other problem).
  // The field names are message()s: they serve to find a field and to name it in an error.
  const read = new Reader(root);
  const exchangePath = message("exchange_path");
  config.exchangePath = read.stringField(root, exchangePath, config.exchangePath);
  if (!config.exchangePath.startsWith("/")) read.fail(exchangePath, message("must start with '/'"));
  config.maxBodyBytes = <i32>read.integerField(root, message("max_body_bytes"), config.maxBodyBytes, 64, 65536);
  config.refreshBufferSeconds = read.integerField(root, message("refresh_buffer_seconds"), config.refreshBufferSeconds, 0, 43200);
  config.refreshAheadPercent = read.integerField(root, message("refresh_ahead_percent"), config.refreshAheadPercent, 0, 90);
  config.evictionIntervalSeconds = read.integerField(root, message("eviction_interval_seconds"), config.evictionIntervalSeconds, 1, 3600);
  config.coalescePollMs = read.integerField(root, message("coalesce_poll_ms"), config.coalescePollMs, 1, 1000);
  config.metricsFlushMs = read.integerField(root, message("metrics_flush_ms"), config.metricsFlushMs, 10, 60000);
  config.maxKeysPerIdentity = read.integerField(root, message("max_keys_per_identity"), config.maxKeysPerIdentity, 2, 1_000_000);
  config.maxKeys = read.integerField(root, message("max_keys"), config.maxKeys, 16, 100_000_000);
  const trapPathField = message("debug_trap_path");
  const trapPath = read.member(root, trapPathField);
  if (trapPath !== null) config.debugTrapPath = read.string(trapPath, trapPathField, "");
  readIdentity(root, config.identity, read);
  readServedRegions(root, config, read);
  readRegions(root, config, read);
  readExtraServices(root, config, read);
  readResources(root, config, read);
  config.awsContainer = readAwsContainerDoor(root, config.services, read);
  config.gceMetadata = readGceMetadataDoor(root, config.services, read);
  config.azureManagedIdentity = readAzureManagedIdentityDoor(root, config.services, read);
  config.vault = readSwitch(root, message("vault"), read);
  readInjector(root, config, read);
  readL2(root, config, read);
  readRevocation(root, config, read);
  checkDoorPaths(config, read);
  // The LLM filter's own section (llm/config.ts), in the same configuration so both filters of a
  // sidecar share one identity, injector, L2 and revocation setup.
  read.member(root, "llm");
  const unknown = read.unknownField();
  if (unknown !== null) return new ConfigResult(null, message("unknown field '") + unknown + "'");
  return read.error.length > 0 ? new ConfigResult(null, read.error) : new ConfigResult(config, "");
}

function readIdentity(root: JsonValue, identity: IdentitySettings, read: Reader): void {
  const namespace = read.stringField(root, message("jwt_metadata_namespace"), "envoy.filters.http.jwt_authn");
  const payloadKey = read.stringField(root, message("jwt_payload_key"), "jwt_payload");
  identity.jwtPayloadPath = jwtPayloadPath(namespace, payloadKey);
  identity.jwtIssuers = read.stringsField(root, message("jwt_issuers"));
  identity.jwtAudiences = read.stringsField(root, message("jwt_audiences"));
  const trustDomainsField = message("trust_domains");
  identity.trustDomains = read.stringsField(root, trustDomainsField);
  const sourcesField = message("identity_sources");
  const sourcesValue = read.member(root, sourcesField);
  if (sourcesValue !== null) {
    const names = read.strings(sourcesValue, sourcesField);
    const sources = new Array<IdentitySource>();
    for (let i = 0; i < names.length; i++) {
      const source = identitySourceNamed(names[i]);
      if (source >= 0) sources.push(<IdentitySource>source);
      else read.fail(itemName(sourcesField, i), message("must be one of mtls, jwt, static"));
    }
    if (sources.length == 0) read.fail(sourcesField, message("must name at least one source"));
    identity.sources = sources;
  }
  const staticField = message("static_spiffe_id");
  const staticValue = read.member(root, staticField);
  if (staticValue !== null) {
    const id = read.string(staticValue, staticField, "");
    if (parseSpiffeId(id) === null) read.fail(staticField, message("must be spiffe://{trust-domain}/agent/{tenant}/{agent}/{role}"));
    identity.staticSpiffeId = id;
  }
  // No trust domain is accepted unless named: an identity verified against some other domain's
  // bundle (a misconfigured validator, a second jwt_authn provider) must not pass by default.
  const verified = identity.sources.includes(IdentitySource.Mtls) || identity.sources.includes(IdentitySource.Jwt);
  if (verified && identity.trustDomains.length == 0) {
    read.fail(trustDomainsField, message("must name the trust domains whose identities are accepted"));
  }
  if (identity.sources.includes(IdentitySource.Static) && identity.staticSpiffeId.length == 0) {
    read.fail(staticField, message("is required when identity_sources contains static"));
  }
}

/** `default_regions`: provider → the region of an exchange that names none; each one served. */
function readRegions(root: JsonValue, config: FilterConfig, read: Reader): void {
  const name = message("default_regions");
  const value = read.member(root, name);
  if (value !== null && value.kind != JsonKind.Object) {
    read.fail(name, message("must be an object of provider to region"));
  } else if (value !== null) {
    for (let i = 0; i < value.keys.length; i++) {
      const field = name + "." + value.keys[i];
      const index = providerIndex(value.keys[i], field, read);
      if (index < 0) continue;
      const region = read.string(value.items[i], field, "");
      if (isRegionIn(region, field, read)) config.defaultRegions[index] = region;
    }
  }
  for (let i = 0; i < PROVIDERS.length; i++) {
    if (!config.servesRegion(PROVIDERS[i], config.defaultRegions[i])) {
      read.fail(name + "." + PROVIDERS[i], message("must be one of the regions served for ") + PROVIDERS[i]);
    }
  }
}

/** The provider's index in PROVIDERS, or -1 once `field` is failed for naming none. */
function providerIndex(provider: string, field: string, read: Reader): i32 {
  const index = PROVIDERS.indexOf(provider);
  if (index < 0) read.fail(field, message("is not a provider (aws, gcp, azure)"));
  return index;
}

/** Whether `region` is a region by the contract's grammar; `field` is failed if not. */
function isRegionIn(region: string, field: string, read: Reader): bool {
  if (isRegion(region)) return true;
  read.fail(field, message("is not a region (see the region grammar in contract/contract.json)"));
  return false;
}

/**
 * `regions`: provider → the regions exchanges may name (a narrower list than the contract's), or
 * "any" (no allow-list: every key one identity names stays in L1, so only for load tests).
 */
function readServedRegions(root: JsonValue, config: FilterConfig, read: Reader): void {
  const name = message("regions");
  const value = read.member(root, name);
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(name, message("must be an object of provider to a list of regions, or \"any\""));
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const field = name + "." + value.keys[i];
    const index = providerIndex(value.keys[i], field, read);
    if (index < 0) continue;
    const item = value.items[i];
    if (item.kind == JsonKind.String && item.text == "any") {
      config.anyRegion[index] = true;
      continue;
    }
    const regions = read.strings(item, field);
    if (regions.length == 0) read.fail(field, message("must name at least one region, or be \"any\""));
    for (let j = 0; j < regions.length; j++) isRegionIn(regions[j], itemName(field, j), read);
    config.servedRegions[index] = regions;
  }
}

function readExtraServices(root: JsonValue, config: FilterConfig, read: Reader): void {
  const field = message("extra_services");
  const extras = read.stringsField(root, field);
  for (let i = 0; i < extras.length; i++) {
    if (!isServiceName(extras[i])) {
      read.fail(itemName(field, i), message("must be {aws|gcp|azure}_{name} (see the service grammar in contract/contract.json)"));
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

function readResources(root: JsonValue, config: FilterConfig, read: Reader): void {
  const name = message("resources");
  const value = read.member(root, name);
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(name, message("must be an object of \"{tenant}/{agent}[/{role}]\" to a list of services"));
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const key = value.keys[i];
    const field = name + "." + key;
    const depth = countSlashes(key) + 1;
    if (depth < 2 || depth > 3 || key.includes("//") || key.startsWith("/") || key.endsWith("/")) {
      read.fail(field, message("key must be {tenant}/{agent} or {tenant}/{agent}/{role}"));
      continue;
    }
    const resources = read.strings(value.items[i], field);
    const services = new Array<string>();
    for (let j = 0; j < resources.length; j++) {
      const service = serviceOfResource(resources[j]);
      if (!config.services.includes(service)) {
        read.fail(itemName(field, j), message("names a service that is not in the catalog or extra_services"));
      }
      services.push(service);
    }
    config.resources.add(key, services);
  }
}

/** The fields every upstream section has; `read` is in that section. */
function readUpstream(value: JsonValue, fallback: UpstreamConfig, read: Reader): UpstreamConfig {
  const cluster = read.stringField(value, message("cluster"), fallback.cluster);
  const authority = read.stringField(value, message("authority"), cluster);
  const timeoutMs = <u32>read.integerField(value, message("timeout_ms"), fallback.timeoutMs, 1, 60000);
  return new UpstreamConfig(cluster, authority, timeoutMs);
}

function readInjector(root: JsonValue, config: FilterConfig, read: Reader): void {
  const name = message("injector");
  const value = read.member(root, name);
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(name, message("must be an object {cluster, authority, path, timeout_ms}"));
    return;
  }
  read.section = name + ".";
  config.injector = readUpstream(value, config.injector, read);
  const pathField = message("path");
  config.injectorPath = read.stringField(value, pathField, config.injectorPath);
  if (!config.injectorPath.startsWith("/")) read.fail(pathField, message("must start with '/'"));
  read.section = "";
}

function readL2(root: JsonValue, config: FilterConfig, read: Reader): void {
  const name = message("l2");
  const value = read.member(root, name);
  if (value === null || value.kind == JsonKind.Null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(name, message("must be an object {cluster, authority, timeout_ms} or null"));
    return;
  }
  read.section = name + ".";
  const cluster = message("cluster");
  if (read.member(value, cluster) === null) read.fail(cluster, message("is required"));
  config.l2 = readUpstream(value, new UpstreamConfig("", "", 50), read);
  read.section = "";
}

function readRevocation(root: JsonValue, config: FilterConfig, read: Reader): void {
  const section = message("revocation");
  const value = read.member(root, section);
  if (value === null || value.kind == JsonKind.Null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(section, message("must be an object {path, admin_spiffe_ids, poll_interval_ms} or null"));
    return;
  }
  // Revocations travel through L2: the bridge purges Valkey and keeps the log every sidecar polls.
  const bridge = config.l2;
  if (bridge === null) read.fail(section, message("needs l2 (revocations are shared through the bridge)"));
  read.section = section + ".";
  const pathField = message("path");
  const path = read.stringField(value, pathField, "/revoke");
  if (!path.startsWith("/") || path == config.exchangePath) read.fail(pathField, message("must start with '/' and differ from exchange_path"));
  const adminsField = message("admin_spiffe_ids");
  const admins = read.stringsField(value, adminsField);
  if (admins.length == 0) read.fail(adminsField, message("must name at least one admin SPIFFE ID"));
  for (let i = 0; i < admins.length; i++) {
    if (parseSpiffeId(admins[i]) === null) read.fail(itemName(adminsField, i), message("must be an agent SPIFFE ID"));
  }
  const pollMs = read.integerField(value, message("poll_interval_ms"), 1000, 100, 60000);
  const stalenessField = message("max_log_staleness_ms");
  const stalenessMs = read.integerField(value, stalenessField, 30000, 1000, 3_600_000);
  if (stalenessMs < pollMs) read.fail(stalenessField, message("must be at least poll_interval_ms"));
  const refuseSeconds = read.integerField(value, message("deny_seconds"), 3600, 1, 604_800);
  read.section = "";
  if (bridge !== null) config.revocation = new RevocationConfig(path, admins, pollMs, stalenessMs, refuseSeconds, bridge);
}

/** true, false, or absent (false). */
function readSwitch(root: JsonValue, field: string, read: Reader): bool {
  const value = read.member(root, field);
  if (value === null || value.kind == JsonKind.Null) return false;
  if (value.kind != JsonKind.Bool) read.fail(field, message("must be true or false"));
  return value.boolean;
}

/** Every door path is its own: a request path opens exactly one door (filter/routes.ts). */
function checkDoorPaths(config: FilterConfig, read: Reader): void {
  const taken = [config.exchangePath];
  const revocation = config.revocation;
  if (revocation !== null) taken.push(revocation.path);
  const aws = config.awsContainer;
  if (aws !== null) claimDoorPath(taken, aws.path, message("aws_container.path"), read);
  const azure = config.azureManagedIdentity;
  if (azure !== null) claimDoorPath(taken, azure.path, message("azure_managed_identity.path"), read);
  if (!config.vault) return;
  for (let i = 0; i < taken.length; i++) {
    if (isVaultPath(taken[i])) read.fail(message("vault"), message("the vault's paths (") + VAULT_SECRETS_PATH + ", " + VAULT_AUDIT_PATH + message(") must differ from every other door's path"));
  }
}

/** Takes `path` for a door; `field` is failed if another door has it, or the GCE door's paths do. */
function claimDoorPath(taken: string[], path: string, field: string, read: Reader): void {
  if (taken.includes(path) || isGcePath(path)) read.fail(field, message("must differ from every other door's path"));
  taken.push(path);
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
