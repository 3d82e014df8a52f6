// Real SPIRE on one machine: a SPIRE server (its API on a Unix socket only its user may open, the
// node API on loopback), one SPIRE agent attested with a join token (the Workload API and SDS on a
// Unix socket every process may open: the agent tells them apart by their uid), and SPIRE's OIDC
// discovery provider serving the JWT-SVID keys on loopback. Binaries from spire/ (scripts/bootstrap.sh);
// configurations rendered from spire/conf/.
//
//   const spire = await startSpire({ dir, trustDomain: "hexr.local", jwtIssuer });
//   await spire.createEntry({ spiffeId, selectors: ["unix:uid:0"] });
//   await spire.stop();
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { createPart, type Part } from "./part.ts";
import { renderTemplate, type TemplateValues } from "./render.ts";
import { freePort, startProcess, type Readiness } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";

const run = promisify(execFile);
export const spireConfDir = path.join(projectRoot, "spire", "conf");
const bin = (name: string) => path.join(projectRoot, ".tools", "bin", name);
export const spireTools = {
  server: bin("spire-server"),
  agent: bin("spire-agent"),
  oidc: bin("oidc-discovery-provider"),
  registrar: bin("hexr-registrar"),
  svidFiles: bin("hexr-svid-files"),
};

export interface SpireOptions {
  /** Sockets, data and configurations; its path must be short (Unix socket paths: 107 bytes). */
  dir: string;
  trustDomain: string;
  /** The `iss` of every JWT-SVID (what jwt_authn and the injector require). */
  jwtIssuer: string;
  /** The node (agent) name: its SPIFFE ID is spiffe://{td}/node/{name}, the parent of the pod's entries. */
  nodeName?: string;
  /** Default 3600 (SPIRE's): SVIDs rotate at half their lifetime. */
  x509SvidTtlSeconds?: number;
  /** Default 300 (SPIRE's). */
  jwtSvidTtlSeconds?: number;
  /** The signing CA's lifetime; default 86400 (SPIRE's). */
  caTtlSeconds?: number;
  logDir?: string;
}

export interface EntrySpec {
  spiffeId: string;
  /** Default the node alias (Spire.nodeId); the platform's own processes use the agent's own ID (Spire.agentId). */
  parentId?: string;
  /** e.g. ["unix:uid:61001"]; every one must match the calling process. */
  selectors: string[];
  x509SvidTtlSeconds?: number;
  jwtSvidTtlSeconds?: number;
  /** DNS names the X.509-SVID also carries, for TLS clients that check a host name rather than the SPIFFE ID. */
  dnsNames?: string[];
}

export interface Spire {
  readonly trustDomain: string;
  /** spiffe://{td}/node/{nodeName}: the agent's alias, parent of every workload entry. */
  readonly nodeId: string;
  /** The agent's own SPIFFE ID (spiffe://{td}/spire/agent/join_token/{token}). */
  readonly agentId: string;
  /** The SPIRE server's API (mode 0700 directory: its user only). */
  readonly serverSocket: string;
  /** The Workload API and SDS: what agents' SDKs and Envoy dial. */
  readonly agentSocket: string;
  /** SPIRE's JWT-SVID keys as a JWKS (the OIDC discovery provider). */
  readonly jwksUrl: string;
  readonly parts: { server: Part; agent: Part; oidc: Part };
  createEntry(entry: EntrySpec): Promise<void>;
  deleteEntry(spiffeId: string): Promise<void>;
  /** `spire-server <args> -socketPath …` and its stdout. */
  serverCommand(args: string[]): Promise<string>;
  logs(): Record<string, string>;
  stop(): Promise<void>;
}

const MAX_SOCKET_PATH_BYTES = 107;

/** spire/conf/{name} with its placeholders filled in, written to {dir}/{name}; returns that path. */
function renderConf(name: string, dir: string, values: TemplateValues): string {
  const file = path.join(dir, name);
  writeFileSync(file, renderTemplate(readFileSync(path.join(spireConfDir, name), "utf8"), values));
  return file;
}

export async function startSpire(options: SpireOptions): Promise<Spire> {
  const dir = path.resolve(options.dir);
  const nodeId = `spiffe://${options.trustDomain}/node/${options.nodeName ?? "pod"}`;
  // The server's socket sits in a directory only this user may enter; the agent's in one every
  // user may enter, because every agent process, whatever its uid, must reach the Workload API.
  const serverDir = path.join(dir, "server");
  const agentDir = path.join(dir, "agent");
  const publicDir = path.join(dir, "public");
  mkdirSync(serverDir, { recursive: true, mode: 0o700 });
  mkdirSync(agentDir, { recursive: true, mode: 0o700 });
  mkdirSync(publicDir, { recursive: true });
  chmodSync(dir, 0o711);
  chmodSync(publicDir, 0o755);
  const serverSocket = path.join(serverDir, "api.sock");
  const agentSocket = path.join(publicDir, "agent.sock");
  for (const socket of [serverSocket, agentSocket]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) throw new Error(`SPIRE's directory is too deep for a Unix socket path: ${socket}`);
  }
  const [serverPort, oidcPort] = [await freePort(), await freePort()];
  const jwksUrl = `http://127.0.0.1:${oidcPort}/keys`;
  const serverConf = renderConf("server.conf", serverDir, {
    trust_domain: options.trustDomain,
    server_port: serverPort,
    socket_path: serverSocket,
    data_dir: path.join(serverDir, "data"),
    jwt_issuer: options.jwtIssuer,
    ca_ttl: `${options.caTtlSeconds ?? 86400}s`,
    default_x509_svid_ttl: `${options.x509SvidTtlSeconds ?? 3600}s`,
    default_jwt_svid_ttl: `${options.jwtSvidTtlSeconds ?? 300}s`,
  });
  const serverCommand = async (args: string[]) => (await run(spireTools.server, [...args, "-socketPath", serverSocket])).stdout;
  const part = (name: string, command: string, args: string[], url: string, port: number, ready: Readiness) =>
    createPart({
      name,
      port,
      url,
      logFile: options.logDir ? path.join(options.logDir, `${name}.log`) : undefined,
      launch: () => startProcess({ name, command, args, ready, timeoutMs: 30_000 }),
    });
  const healthy = (command: string, socket: string): Readiness => ({ check: async () => (await run(command, ["healthcheck", "-socketPath", socket]), true) });
  const server = part("spire-server", spireTools.server, ["run", "-config", serverConf], `unix://${serverSocket}`, serverPort, healthy(spireTools.server, serverSocket));
  const agentConf = path.join(agentDir, "agent.conf");
  const agent = part("spire-agent", spireTools.agent, ["run", "-config", agentConf], `unix://${agentSocket}`, 0, healthy(spireTools.agent, agentSocket));
  const oidcConf = renderConf("oidc-discovery-provider.conf", agentDir, {
    port: oidcPort,
    jwt_issuer: options.jwtIssuer,
    workload_socket_path: agentSocket,
    trust_domain: options.trustDomain,
  });
  const oidc = part("spire-oidc", spireTools.oidc, ["-config", oidcConf], `http://127.0.0.1:${oidcPort}`, oidcPort, { url: jwksUrl });
  const parts = { server, agent, oidc };
  const stop = async () => {
    await oidc.stop();
    await agent.stop();
    await server.stop();
  };
  let agentId = "";
  const createEntry = async (entry: EntrySpec) => {
    const args = ["entry", "create", "-parentID", entry.parentId ?? nodeId, "-spiffeID", entry.spiffeId];
    for (const selector of entry.selectors) args.push("-selector", selector);
    if (entry.x509SvidTtlSeconds) args.push("-x509SVIDTTL", String(entry.x509SvidTtlSeconds));
    if (entry.jwtSvidTtlSeconds) args.push("-jwtSVIDTTL", String(entry.jwtSvidTtlSeconds));
    for (const name of entry.dnsNames ?? []) args.push("-dns", name);
    await serverCommand(args);
  };
  try {
    await server.start();
    // The agent's first start attests with a one-time join token; later starts reuse the SVID it
    // keeps in its data directory.
    const token = /Token: (\S+)/.exec(await serverCommand(["token", "generate", "-spiffeID", nodeId, "-ttl", "600"]))?.[1];
    if (!token) throw new Error("spire-server token generate printed no token");
    agentId = `spiffe://${options.trustDomain}/spire/agent/join_token/${token}`;
    const bundlePath = path.join(agentDir, "bootstrap-bundle.pem");
    writeFileSync(bundlePath, await serverCommand(["bundle", "show"]));
    renderConf("agent.conf", agentDir, {
      trust_domain: options.trustDomain,
      server_port: serverPort,
      socket_path: agentSocket,
      data_dir: path.join(agentDir, "data"),
      trust_bundle_path: bundlePath,
      join_token: token,
    });
    await agent.start();
    // The provider reads the keys through the Workload API, as a registered workload of its own.
    await createEntry({
      spiffeId: `spiffe://${options.trustDomain}/hexr-system/oidc-discovery-provider`,
      parentId: agentId,
      selectors: [`unix:uid:${process.getuid?.() ?? 0}`, `unix:path:${realpathSync(spireTools.oidc)}`],
    });
    await oidc.start();
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    trustDomain: options.trustDomain,
    nodeId,
    agentId,
    serverSocket,
    agentSocket,
    jwksUrl,
    parts,
    createEntry,
    async deleteEntry(spiffeId) {
      const shown = await serverCommand(["entry", "show", "-spiffeID", spiffeId]);
      for (const [, id] of shown.matchAll(/Entry ID\s*:\s*(\S+)/g)) await serverCommand(["entry", "delete", "-entryID", id]);
    },
    serverCommand,
    logs: () => Object.fromEntries(Object.values(parts).map((part) => [part.name, part.logs()])),
    stop,
  };
}

/**
 * Waits until the agent hands `uid`'s processes an X.509-SVID for `spiffeId`: a new entry reaches
 * the agent on its next sync with the server (every few seconds), not at once.
 */
export async function waitForSvid(spire: Spire, spiffeId: string, options: { uid?: number; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let last = "";
  while (Date.now() < deadline) {
    try {
      const { stdout } = await run(spireTools.agent, ["api", "fetch", "x509", "-socketPath", spire.agentSocket, "-timeout", "2s"], {
        uid: options.uid,
        gid: options.uid,
      });
      if (stdout.includes(`SPIFFE ID:\t\t${spiffeId}`) || stdout.includes(spiffeId)) return;
      last = stdout;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`no X.509-SVID for ${spiffeId} (uid ${options.uid ?? process.getuid?.()}) within the wait: ${last.slice(-500)}`);
}
