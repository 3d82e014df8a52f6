// Real Valkey (or Debian's RESP-compatible redis-server) on loopback for tests and the local stack:
// one standalone server, or a cluster of masters created with the server's own CLI.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { tools } from "./tools.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const READY_LINE = /Ready to accept connections/;
// freePort() can race with another process taking the port before the server binds it.
const BIND_ATTEMPTS = 3;

export interface ValkeyServer {
  port: number;
  url: string;
  /** SIGSTOP: the server keeps its sockets open but answers nothing, like a hung or partitioned node. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface ValkeyNode {
  host: string;
  port: number;
}

export interface ValkeyCluster {
  nodes: ValkeyNode[];
  stop(): Promise<void>;
}

export interface StartValkeyOptions {
  /** Fixed port (e.g. to restart a server where clients expect it); a free one otherwise. */
  port?: number;
  /** Working directory the caller owns and keeps; a temp dir removed by stop() otherwise. */
  dir?: string;
}

/** A standalone server without persistence, bound to 127.0.0.1. */
export async function startValkey(options: StartValkeyOptions = {}): Promise<ValkeyServer> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), "hexr-valkey-")));
  try {
    const { process, port } = await startServer({ dir, fixedPort: options.port });
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      pause: () => process.child.kill("SIGSTOP"),
      resume: () => process.child.kill("SIGCONT"),
      async stop() {
        process.child.kill("SIGCONT"); // a paused server cannot act on SIGTERM
        await process.stop();
        if (!options.dir) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (!options.dir) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A real cluster of `masters` masters (no replicas) on loopback, resolved once every node reports cluster_state:ok. */
export async function startValkeyCluster(masters = 3): Promise<ValkeyCluster> {
  const dirs: string[] = [];
  const processes: RunningProcess[] = [];
  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    const nodes: ValkeyNode[] = [];
    for (let i = 0; i < masters; i++) {
      const dir = await mkdtemp(path.join(tmpdir(), `hexr-valkey-cluster-${i}-`));
      dirs.push(dir);
      const started = await startServer({ dir, extraArgs: clusterArgs(dir) });
      processes.push(started.process);
      nodes.push({ host: "127.0.0.1", port: started.port });
    }
    await createCluster(nodes);
    await waitForClusterOk(nodes);
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface ServerSpec {
  dir: string;
  fixedPort?: number;
  /** Extra server arguments; a function so cluster nodes can pick a fresh bus port per attempt. */
  extraArgs?: () => Promise<string[]>;
}

async function startServer(spec: ServerSpec): Promise<{ process: RunningProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = spec.fixedPort ?? (await freePort());
    try {
      const process = await startProcess(valkeyProcessSpec(port, spec.dir, (await spec.extraArgs?.()) ?? []));
      return { process, port };
    } catch (error) {
      const portTaken = /Address already in use/i.test(String(error));
      if (!portTaken || spec.fixedPort !== undefined || attempt >= BIND_ATTEMPTS) throw error;
    }
  }
}

/** How a Valkey server is started everywhere: loopback only, nothing persisted. */
export function valkeyProcessSpec(port: number, dir: string, extraArgs: string[] = []): ProcessSpec {
  return {
    name: `valkey:${port}`,
    command: tools.valkeyServer(),
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extraArgs],
    ready: { logLine: READY_LINE },
  };
}

function clusterArgs(dir: string): () => Promise<string[]> {
  // The bus port defaults to port + 10000, which is often above 65535 for kernel-chosen ports.
  return async () => [
    "--cluster-enabled", "yes",
    "--cluster-config-file", path.join(dir, "nodes.conf"),
    "--cluster-node-timeout", "5000",
    "--cluster-port", String(await freePort()),
  ];
}

/** valkey-cli beside valkey-server, redis-cli beside redis-server. */
function cliBinary(): string {
  const server = tools.valkeyServer();
  return path.join(path.dirname(server), path.basename(server).replace(/-server$/, "-cli"));
}

async function createCluster(nodes: ValkeyNode[]): Promise<void> {
  const addresses = nodes.map((n) => `${n.host}:${n.port}`);
  await run(cliBinary(), ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"], {
    timeout: 60_000,
  });
}

async function waitForClusterOk(nodes: ValkeyNode[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const infos = await Promise.all(nodes.map((n) => clusterInfo(n)));
    const converged = infos.every(
      (info) => /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info),
    );
    if (converged) return;
    last = infos.join("\n");
    await sleep(100);
  }
  throw new Error(`Valkey cluster did not reach cluster_state:ok within ${timeoutMs} ms:\n${last}`);
}

async function clusterInfo(node: ValkeyNode): Promise<string> {
  const { stdout } = await run(cliBinary(), ["-h", node.host, "-p", String(node.port), "cluster", "info"], {
    timeout: 5_000,
  });
  return stdout;
}
