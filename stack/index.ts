// The whole local stack on loopback: Valkey, the L2 bridge, OPA, moto (STS and S3), stand-ins for
// GCP's STS and IAM Credentials and for Entra ID (support/fakes/), the Credential Injector and one
// or more Envoy sidecars running the exchange filter. Used by `npm start`
// (scripts/stack.ts, fixed ports), by the e2e tests (free ports) and by the benchmark.
//
//   const stack = await startStack();            // every port free
//   await fetch(`${stack.envoy.agentUrl}/exchange`, ...);
//   await stack.parts.bridge.stop();             // any part can be stopped and started again
//   await stack.envoy.restart();                 // L1 is gone, L2 remains
//   const podB = await stack.addSidecar("pod-b"); // a second pod sharing L2
//   await stack.stop();
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";
import { ensureDevKeyFile } from "../bridge/keyfile.ts";
import type { CallerRule } from "../bridge/index.ts";
import {
  BRIDGE_SPIFFE_ID,
  DEV_AUDIENCE,
  DEV_ISSUER,
  DEV_TRUST_DOMAIN,
  INJECTOR_SPIFFE_ID,
  VAULT_SPIFFE_ID,
  defaultDevIdentityDir,
  ensureDevIdentity,
  issueServiceSvid,
  type DevIdentityPaths,
} from "../support/dev-identity.ts";
import { valkeyUsers } from "../support/valkey.ts";
import { devBridgeAccess, sidecarRule } from "./bridge-access.ts";
import { FREE_PORTS, LLM_ADMIN_ID, METADATA_AGENT_ID, VAULT_ADMIN_ID, type StackPorts } from "./defaults.ts";
import { metadataListener } from "./sdk-env.ts";
import { createEnvoySidecar, type EnvoyLogLevel, type EnvoyOptions, type EnvoySidecar } from "./envoy.ts";
import type { Part } from "./part.ts";
import { loadFilterConfiguration, loadLlmSection, type FileIdentity, type FilterConfiguration, type LlmUpstreams, type SidecarIdentity, type SidecarValues } from "./render.ts";
import { startSpireIdentity, withRegisteredGrants, type SpireStackIdentity, type SpireStackOptions } from "./spire-identity.ts";
import {
  bridgePart, cloudFakes, fakeCloudPart, injectorPart, motoPart, opaPart, policySetup, valkeyPart, vaultPart, type InjectorRevocationOption,
} from "./services.ts";

export type { EnvoySidecar } from "./envoy.ts";
export type { Part } from "./part.ts";
export type { SpireStackIdentity, SpireStackOptions } from "./spire-identity.ts";
export {
  DEFAULT_PORTS, FREE_PORTS, DEMO_AGENT_ID, LLM_ADMIN_ID, LLM_EMULATOR_KEYS, LLM_EMULATOR_PORT, METADATA_AGENT_ID, VAULT_ADMIN_ID, llmEmulatorProviders, type StackPorts,
} from "./defaults.ts";

export const defaultWasmPath = path.join(projectRoot, "build", "exchange_filter.wasm");
export const defaultLlmWasmPath = path.join(projectRoot, "build", "llm_filter.wasm");

export interface StackOptions {
  /** Ports for each part; 0 (the default) picks a free one. */
  ports?: Partial<StackPorts>;
  /** Rendered configs, data and logs; default a fresh directory under .run/ (removed by stop()). */
  runDir?: string;
  /** Dev identity material (support/dev-identity.ts); default .dev/. */
  identityDir?: string;
  wasmPath?: string;
  /** Envoy worker threads. */
  concurrency?: number;
  /** Envoy's log level; see EnvoyOptions.logLevel for why nothing below info. */
  envoyLogLevel?: EnvoyLogLevel;
  /** The exchange filter's log level (Envoy's wasm component). */
  wasmLogLevel?: EnvoyOptions["wasmLogLevel"];
  /** Changes to envoy/exchange-filter.json for this stack; `l2: null` turns L2 off. */
  filterOverrides?: FilterConfiguration;
  /** Copy each part's output to runDir/logs/{part}.log as it runs. */
  logFiles?: boolean;
  /**
   * Caller rules added to the bridge's access file (stack/bridge-access.ts): by default the dev
   * sidecar may use its own tenant's keys (acme-corp) only.
   */
  bridgeCallers?: CallerRule[];
  /**
   * Whether the injector follows the bridge's revocation log and refuses revoked identities
   * (stack/services.ts policySetup): true (the default), false, or true with settings changed,
   * e.g. `{ deny_seconds: 60 }`. When on, the bridge starts before the injector.
   */
  injectorRevocation?: InjectorRevocationOption;
  /**
   * Agent SPIFFE IDs (exact, or a prefix ending in /*) the sidecars may assert without a JWT-SVID
   * (identity source `static`: their metadata listeners), written into the injector's caller rule
   * for the dev sidecar's SVID. Default: the metadata listener's identity, METADATA_AGENT_ID; []
   * lets them assert nothing.
   */
  staticIdentities?: string[];
  /**
   * Where identities come from: "dev" (the default), minted from the dev key and CA on disk
   * (support/dev-identity.ts), or "spire": a real SPIRE server, agent and OIDC discovery provider
   * issue every SVID, Envoy takes its certificates over SDS (stack/spire-identity.ts).
   */
  identity?: "dev" | "spire";
  /** With identity "spire": lifetimes, and the `hexr build` output to register. */
  spire?: SpireStackOptions;
  /**
   * Whether the stack runs Hexr Vault (vault/) and opens the sidecars' vault door (filter `vault`);
   * default true. The vault trusts the dev sidecar for acme-corp (and hexr-system, whose auditor
   * reads the audit log), and `bridgeCallers` for more.
   */
  vault?: boolean;
  /**
   * The LLM route (docs/llm-route.md): the sidecars run the LLM filter with this `llm` section
   * (default envoy/llm-filter.json's, with LLM_ADMIN_ID as its admin) and forward each provider it
   * serves to the URL given here (in tests and `npm start`, the loopback provider emulator).
   */
  llm?: { providers: LlmUpstreams["providers"]; section?: FilterConfiguration };
  /** The injector, the bridge and the vault serve Prometheus metrics (GET /metrics) on free loopback ports: Stack.metricsUrls. */
  metrics?: boolean;
}

/** Talking to L2 directly (tests, operators): both refuse anyone without these. */
export interface L2Access {
  /**
   * TLS files for the bridge: an X.509-SVID it serves acme-corp's keys to (the dev sidecar's, or
   * with SPIRE an operator identity's), and the CA the bridge's certificate chains to.
   */
  bridgeTls: { cert: string; key: string; ca: string };
  /** Valkey's admin user (every command, every key). */
  valkeyAdmin: { username: string; password: string };
}

export interface Stack {
  readonly runDir: string;
  readonly identity: DevIdentityPaths;
  readonly ports: Readonly<StackPorts>;
  /** The first sidecar ("pod-a"), on ports.agent / ports.agentMtls / ports.stats. */
  readonly envoy: EnvoySidecar;
  readonly sidecars: readonly EnvoySidecar[];
  /** gcpSts: the fake GCP STS and IAM Credentials; entra: the fake Entra ID (HTTPS, the dev CA's listener certificate). */
  readonly parts: { valkey: Part; bridge: Part; opa: Part; moto: Part; injector: Part; gcpSts: Part; entra: Part; vault: Part | null };
  /** With identity "spire": SPIRE, the services' SVID files, registration. */
  readonly spire: SpireStackIdentity | null;
  readonly l2: L2Access;
  /** With `metrics`: each service's http://127.0.0.1:PORT/metrics (the vault's null when it does not run); null without. */
  readonly metricsUrls: { injector: string; bridge: string; vault: string | null } | null;
  /** Another sidecar on free ports, sharing the injector, the bridge and Valkey: a second pod. */
  addSidecar(name: string): Promise<EnvoySidecar>;
  /** Output of every part and sidecar so far, by name. */
  logs(): Record<string, string>;
  stop(): Promise<void>;
}

/** Free ports are picked before the parts bind them, so another process can take one meanwhile. */
const START_ATTEMPTS = 3;
const PORT_TAKEN = /address already in use|EADDRINUSE/i;

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const choosesPorts = Object.values({ ...FREE_PORTS, ...options.ports }).includes(0);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(options);
    } catch (error) {
      if (!choosesPorts || attempt >= START_ATTEMPTS || !PORT_TAKEN.test(String(error))) throw error;
    }
  }
}

async function startStackOnce(options: StackOptions): Promise<Stack> {
  const identity = await ensureDevIdentity(options.identityDir ?? defaultDevIdentityDir);
  const wasmPath = options.wasmPath ?? defaultWasmPath;
  if (!existsSync(wasmPath)) throw new Error(`${wasmPath} does not exist: run \`npm run build\` first`);
  const ownsRunDir = options.runDir === undefined;
  const runDir = options.runDir ?? makeRunDir();
  const logDir = options.logFiles ? path.join(runDir, "logs") : undefined;
  // The cloud stand-ins and the injector's discovery listener (where they fetch its keys) always
  // take free ports: nothing outside the stack dials them.
  const { gcpSts: gcpStsPort, entra: entraPort, discovery: discoveryPort, ...ports } = await resolvePorts({
    ...FREE_PORTS, ...options.ports, gcpSts: 0, entra: 0, discovery: 0,
  });
  const metricsPorts = options.metrics ? await resolvePorts({ injector: 0, bridge: 0, vault: 0 }) : null;
  const keyFile = ensureDevKeyFile(path.join(identity.dir, "l2-bridge.key"));
  const spire = options.identity === "spire" ? await startSpireIdentity({ runDir, options: options.spire ?? {}, logDir }) : null;
  try {
    return await assemble(spire);
  } catch (error) {
    // A part that fails to start stops everything, SPIRE included; this covers what fails before.
    await spire?.stop();
    throw error;
  }

  async function assemble(spire: SpireStackIdentity | null): Promise<Stack> {
    const runsVault = options.vault ?? true;
    const configured = withOverrides(
      stackFilterConfiguration({ vault: runsVault, llmSection: options.llm ? (options.llm.section ?? loadLlmSection()) : undefined }),
      options.filterOverrides,
    );
    const llm: LlmUpstreams | undefined = options.llm ? { wasmPath: defaultLlmWasmPath, providers: options.llm.providers } : undefined;
    const filterConfiguration = spire ? withRegisteredGrants(configured, spire.grantsFile) : configured;

    const valkeyDir = path.join(runDir, "valkey");
    mkdirSync(valkeyDir, { recursive: true });
    // Passwords (mode 0600) for this run only; Valkey gets their hashes.
    const users = valkeyUsers(path.join(runDir, "valkey-users"));
    const bridgeSvid = spire ? spire.bridge : await issueServiceSvid("bridge", identity.dir);
    const bridgeTrustBundle = spire ? spire.bridge.bundle : identity.ca;
    const accessFile = path.join(runDir, "bridge-access.json");
    const access = devBridgeAccess({ jwksFile: spire ? spire.bridge.jwtBundle : identity.jwks, filterConfiguration, extraCallers: options.bridgeCallers });
    writeFileSync(accessFile, JSON.stringify(access, null, 2) + "\n");
    const policy = policySetup({
      runDir, filterConfiguration, injectorRevocation: options.injectorRevocation, staticIdentities: options.staticIdentities ?? [METADATA_AGENT_ID],
    });
    const clouds = cloudFakes({ ports: { gcpSts: gcpStsPort, entra: entraPort, discovery: discoveryPort }, identity });
    const parts = {
      valkey: valkeyPart({ port: ports.valkey, dataDir: valkeyDir, users, logDir }),
      bridge: bridgePart({
        port: ports.bridge,
        valkeyUrl: `redis://127.0.0.1:${ports.valkey}`,
        valkeyPasswordFile: users.bridge.passwordFile,
        keyFile,
        tls: { cert: bridgeSvid.cert, key: bridgeSvid.key, trustBundle: bridgeTrustBundle },
        accessFile,
        ...(metricsPorts ? { metricsPort: metricsPorts.bridge } : {}),
        logDir,
      }),
      opa: opaPart({ port: ports.opa, auth: policy.opaAuth, dataFiles: [...policy.opaDataFiles, ...(spire ? [spire.grantsFile] : [])], logDir }),
      moto: motoPart(ports.moto, logDir),
      injector: await injectorPart({
        port: ports.injector,
        opaUrl: `http://127.0.0.1:${ports.opa}`,
        opaTokenFile: policy.opaAuth.tokenFile,
        stsEndpoint: `http://127.0.0.1:${ports.moto}`,
        identityDir: identity.dir,
        configFile: path.join(runDir, "injector.json"),
        bridgeUrl: `https://127.0.0.1:${ports.bridge}`,
        revocation: policy.revocation,
        regions: policy.regions,
        discoveryPort,
        gcp: clouds.injectorGcp,
        azure: clouds.injectorAzure,
        callerRules: policy.callerRules,
        ...(runsVault ? { vault: { url: `https://127.0.0.1:${ports.vault}` } } : {}),
        ...(spire ? { svid: spire.injector, jwks: { url: spire.spire.jwksUrl, refreshSeconds: spire.jwksRefreshSeconds } } : {}),
        ...(metricsPorts ? { metricsPort: metricsPorts.injector } : {}),
        logDir,
      }),
      gcpSts: fakeCloudPart({ name: "gcp-sts", config: clouds.gcpSts, configFile: path.join(runDir, "gcp-sts.json"), logDir }),
      entra: fakeCloudPart({ name: "entra", config: clouds.entra, configFile: path.join(runDir, "entra.json"), logDir }),
      vault: runsVault ? vaultPart({
        port: ports.vault,
        tls: spire ? spire.vault : { ...(await issueServiceSvid("vault", identity.dir)), bundle: identity.ca },
        jwks: spire ? { url: spire.spire.jwksUrl, refreshSeconds: spire.jwksRefreshSeconds } : { file: identity.jwks },
        callerRules: stackVaultCallerRules(options.bridgeCallers),
        admins: [VAULT_ADMIN_ID],
        dataDir: vaultDir(runDir),
        configFile: path.join(runDir, "vault.json"),
        ...(metricsPorts ? { metricsPort: metricsPorts.vault } : {}),
        logDir,
      }) : null,
    };
    const sidecars: EnvoySidecar[] = [];

    const sidecar = (name: string, sidecarPorts: SidecarPorts) =>
      createEnvoySidecar({
        name,
        runDir,
        concurrency: options.concurrency ?? 2,
        logLevel: options.envoyLogLevel,
        wasmLogLevel: options.wasmLogLevel,
        logFile: logDir ? path.join(logDir, `envoy-${name}.log`) : undefined,
        values: nativeSidecarValues({ sidecarPorts, ports, identity, wasmPath, filterConfiguration, sidecarIdentity: spire?.sidecar(), llm }),
      });

    const stopAll = async () => {
      // Front to back, so nothing in front sees a dependency vanish before it is gone itself.
      await Promise.allSettled(sidecars.map((s) => s.stop()));
      await Promise.allSettled([parts.injector.stop(), parts.bridge.stop()]);
      await Promise.allSettled([parts.opa.stop(), parts.moto.stop(), parts.valkey.stop(), parts.gcpSts.stop(), parts.entra.stop(), parts.vault?.stop()]);
      await spire?.stop();
    };

    try {
      await startTogether([parts.valkey, parts.opa, parts.moto, parts.gcpSts, parts.entra, ...(parts.vault ? [parts.vault] : [])]);
      // An injector that follows revocations reads the log before it serves: the bridge comes first.
      if (policy.revocation) {
        await parts.bridge.start();
        await parts.injector.start();
      } else {
        await startTogether([parts.bridge, parts.injector]);
      }
      const first = sidecar("pod-a", ports);
      sidecars.push(first);
      await first.start();
    } catch (error) {
      await stopAll();
      if (ownsRunDir) rmSync(runDir, { recursive: true, force: true });
      throw error;
    }

    return {
      runDir,
      identity,
      ports,
      envoy: sidecars[0],
      sidecars,
      parts,
      spire,
      l2: {
        bridgeTls: spire
          ? { cert: spire.l2Operator.cert, key: spire.l2Operator.key, ca: spire.l2Operator.bundle }
          : { cert: identity.sidecarCert, key: identity.sidecarKey, ca: identity.ca },
        valkeyAdmin: { username: users.admin.username, password: users.admin.password },
      },
      metricsUrls: metricsPorts ? {
        injector: `http://127.0.0.1:${metricsPorts.injector}/metrics`,
        bridge: `http://127.0.0.1:${metricsPorts.bridge}/metrics`,
        vault: runsVault ? `http://127.0.0.1:${metricsPorts.vault}/metrics` : null,
      } : null,
      async addSidecar(name) {
        if (sidecars.some((s) => s.name === name)) throw new Error(`a sidecar named ${name} already exists`);
        const added = sidecar(name, await resolvePorts<SidecarPorts>({ agent: 0, agentMtls: 0, metadata: 0, stats: 0 }));
        sidecars.push(added);
        await added.start();
        return added;
      },
      logs() {
        const all: Record<string, string> = {};
        for (const part of Object.values(parts)) if (part) all[part.name] = part.logs();
        if (spire) {
          Object.assign(all, spire.spire.logs());
          for (const part of spire.parts) all[part.name] = part.logs();
        }
        for (const s of sidecars) {
          all[`envoy-${s.name}`] = s.logs();
          all[`envoy-${s.name}-access`] = s.accessLog();
        }
        return all;
      },
      async stop() {
        await stopAll();
        if (ownsRunDir) rmSync(runDir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * The filter configuration of a stack's sidecars (before a caller's overrides): envoy/exchange-filter.json,
 * with the vault door when the stack runs the vault, and the LLM route's section (its admin the
 * stack's cost auditor, LLM_ADMIN_ID) when it runs the LLM route. docker-compose's setup renders the same.
 */
export function stackFilterConfiguration(input: { vault: boolean; llmSection?: FilterConfiguration }): FilterConfiguration {
  return {
    ...loadFilterConfiguration(),
    ...(input.vault ? { vault: true } : {}),
    ...(input.llmSection ? { llm: { admin_spiffe_ids: [LLM_ADMIN_ID], ...input.llmSection } } : {}),
  };
}

/**
 * Who may call a stack's vault besides the injector (vaultPart adds its rule): the dev sidecar for
 * its tenant and for hexr-system (the vault's and the LLM route's admins), and any extra callers.
 */
export function stackVaultCallerRules(extra: CallerRule[] = []): CallerRule[] {
  const sidecar = sidecarRule();
  return [{ ...sidecar, tenants: [...sidecar.tenants, "hexr-system"] }, ...extra];
}

/** Starts the parts side by side; fails only once each has started or failed, so none is left starting. */
async function startTogether(parts: Part[]): Promise<void> {
  const failed = (await Promise.allSettled(parts.map((part) => part.start()))).find((result) => result.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** The filter configuration with `overrides` applied; an override of null removes the field. */
export function withOverrides(base: FilterConfiguration, overrides: FilterConfiguration = {}): FilterConfiguration {
  const merged = { ...base, ...overrides };
  for (const [field, value] of Object.entries(merged)) if (value === null) delete merged[field];
  return merged;
}

export type SidecarPorts = Pick<StackPorts, "agent" | "agentMtls" | "metadata" | "stats">;

/** envoy/sidecar.yaml's values for a sidecar of the native stack: everything on loopback. */
export function nativeSidecarValues(input: {
  sidecarPorts: SidecarPorts;
  ports: Pick<StackPorts, "injector" | "bridge" | "vault">;
  identity: DevIdentityPaths;
  wasmPath: string;
  filterConfiguration: FilterConfiguration;
  /** Default the dev identity's files. */
  sidecarIdentity?: SidecarIdentity;
  llm?: LlmUpstreams;
}): Omit<SidecarValues, "nodeId" | "accessLogPath" | "adminSocket"> {
  const { sidecarPorts, ports, identity } = input;
  return {
    statsAddress: "127.0.0.1",
    statsPort: sidecarPorts.stats,
    listenAddress: "127.0.0.1",
    agentPort: sidecarPorts.agent,
    agentMtlsPort: sidecarPorts.agentMtls,
    injectorHost: "127.0.0.1",
    injectorPort: ports.injector,
    injectorSni: "localhost",
    injectorSpiffeId: INJECTOR_SPIFFE_ID,
    bridgeHost: "127.0.0.1",
    bridgePort: ports.bridge,
    bridgeSpiffeId: BRIDGE_SPIFFE_ID,
    wasmPath: input.wasmPath,
    filterConfiguration: input.filterConfiguration,
    jwtIssuer: DEV_ISSUER,
    jwtAudience: DEV_AUDIENCE,
    identity: input.sidecarIdentity ?? devSidecarIdentity(identity),
    vault: { host: "127.0.0.1", port: ports.vault, sni: "localhost", spiffeId: VAULT_SPIFFE_ID },
    metadataListeners: [metadataListener(input.filterConfiguration, { name: "pod", port: sidecarPorts.metadata, spiffeId: METADATA_AGENT_ID })],
    ...(input.llm ? { llm: input.llm } : {}),
  };
}

/** The dev identity's files (support/dev-identity.ts), as the sidecar reads them. */
export function devSidecarIdentity(identity: DevIdentityPaths): FileIdentity {
  return {
    source: "files",
    jwksPath: identity.jwks,
    trustDomains: [{ name: DEV_TRUST_DOMAIN, bundle: identity.ca }],
    trustBundle: identity.ca,
    listenerCert: identity.listenerCert,
    listenerKey: identity.listenerKey,
    sidecarCert: identity.sidecarCert,
    sidecarKey: identity.sidecarKey,
  };
}

/** The vault's database and key file in a stack's run directory. */
export function vaultDir(runDir: string): string {
  const dir = path.join(runDir, "vault");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function makeRunDir(): string {
  const base = path.join(projectRoot, ".run");
  mkdirSync(base, { recursive: true });
  return mkdtempSync(path.join(base, "stack-"));
}

/** Fills every 0 with a distinct free port. */
async function resolvePorts<T extends Record<string, number>>(wanted: T): Promise<T> {
  const resolved = { ...wanted };
  const taken = new Set(Object.values(wanted).filter((port) => port !== 0));
  for (const key of Object.keys(resolved) as (keyof T)[]) {
    if (resolved[key] !== 0) continue;
    let port: number;
    do port = await freePort();
    while (taken.has(port));
    taken.add(port);
    resolved[key] = port as T[keyof T];
  }
  return resolved;
}
