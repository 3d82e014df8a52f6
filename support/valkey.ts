// Real Valkey (or Debian's RESP-compatible redis-server) on loopback for tests and the local stack:
// one standalone server, or a cluster of masters created with the server's own CLI.
//
// Every server requires authentication. The `default` user is off, so a connection that has not
// sent AUTH can run nothing (NOAUTH). Two ACL users exist (valkeyUsers()):
//   hexr-bridge  the bridge: only the commands it sends, only on the keys it owns (BRIDGE_ACL)
//   hexr-admin   operators and tests: everything (cluster setup, inspecting what the bridge stored)
// Their passwords are random, in files of mode 0600; the server gets only their SHA-256 (an ACL
// file), so no password appears on a command line or in a file the server's user could leak.
// With `tls`, the server speaks only TLS (no plain port) and requires a client certificate from
// the given CA, cluster bus included.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
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

export const BRIDGE_USER = "hexr-bridge";
export const ADMIN_USER = "hexr-admin";

/**
 * What the bridge may do, and nothing else: its keys (credentials, exchange locks, the revocation
 * log) and the commands it sends (bridge/store.ts, locks.ts, revocation-log.ts, plus what its
 * client needs to connect: INFO for the ready check, CLUSTER SLOTS for the slot map). Lua scripts
 * run with the caller's permissions, so EVAL cannot reach beyond these either. No FLUSHALL,
 * CONFIG, KEYS, ACL, DEBUG, MODULE, SHUTDOWN, REPLICAOF, MIGRATE, or any other key.
 */
export const BRIDGE_ACL = [
  "resetkeys", "~cred:*", "~lock:*", "~{hexr-revocations}:*",
  "resetchannels",
  "-@all",
  "+get", "+set", "+del", "+scan", "+ping", "+info", "+evalsha", "+eval",
  "+incr", "+zadd", "+zremrangebyrank", "+zrangebyscore",
  "+cluster|slots", "+cluster|info",
].join(" ");

export interface ValkeyLogin {
  username: string;
  password: string;
  /** The password alone, mode 0600: what `--valkey-password-file` points at. */
  passwordFile: string;
}

export interface ValkeyUsers {
  bridge: ValkeyLogin;
  admin: ValkeyLogin;
  /** The ACL file the server loads (`aclfile`): hashed passwords only. */
  aclFile: string;
}

/** Client side of a TLS Valkey: the CA its certificate chains to, and the client certificate it requires. */
export interface ValkeyTlsFiles {
  /** The server's certificate and key (e.g. issueServiceSvid("valkey")). */
  cert: string;
  key: string;
  /** CA of the server certificate and of the client certificates the server accepts. */
  ca: string;
}

/**
 * The two users' password files in `dir` (created with random passwords unless they exist, so a
 * restarted server keeps its clients' passwords) and the ACL file written from them.
 * `aclFileMode`: 0600 by default; the file holds hashes only, so a container whose server runs as
 * another user may read a 0644 one.
 */
export function valkeyUsers(dir: string, aclFileMode = 0o600): ValkeyUsers {
  mkdirSync(dir, { recursive: true });
  const login = (username: string): ValkeyLogin => {
    const passwordFile = path.join(dir, `${username}.password`);
    try {
      writeFileSync(passwordFile, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    return { username, password: readFileSync(passwordFile, "utf8").trim(), passwordFile };
  };
  const bridge = login(BRIDGE_USER);
  const admin = login(ADMIN_USER);
  const sha256 = (password: string) => createHash("sha256").update(password).digest("hex");
  const aclFile = path.join(dir, "users.acl");
  writeFileSync(
    aclFile,
    [
      // Without its own line `default` would exist with every permission and no password.
      "user default off resetkeys resetchannels -@all",
      `user ${bridge.username} on #${sha256(bridge.password)} ${BRIDGE_ACL}`,
      `user ${admin.username} on #${sha256(admin.password)} ~* &* +@all`,
    ].join("\n") + "\n",
    { mode: aclFileMode },
  );
  return { bridge, admin, aclFile };
}

export interface ValkeyServer {
  port: number;
  /** redis:// or rediss://127.0.0.1:PORT, without credentials: what the bridge is given. */
  url: string;
  /** The same with the admin's credentials, for tests and operators that inspect the data. */
  adminUrl: string;
  users: ValkeyUsers;
  tls?: ValkeyTlsFiles;
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
  users: ValkeyUsers;
  tls?: ValkeyTlsFiles;
  stop(): Promise<void>;
}

export interface StartValkeyOptions {
  /** Fixed port (e.g. to restart a server where clients expect it); a free one otherwise. */
  port?: number;
  /** Working directory the caller owns and keeps; a temp dir removed by stop() otherwise. */
  dir?: string;
  /** The users to create (e.g. the same ones again after a restart); fresh ones in the server's dir otherwise. */
  users?: ValkeyUsers;
  /** Serve TLS only, requiring client certificates from `tls.ca`. */
  tls?: ValkeyTlsFiles;
}

/** A standalone server without persistence, bound to 127.0.0.1. */
export async function startValkey(options: StartValkeyOptions = {}): Promise<ValkeyServer> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), "hexr-valkey-")));
  try {
    const users = options.users ?? valkeyUsers(path.join(dir, "users"));
    const { process, port } = await startServer({ dir, fixedPort: options.port, users, tls: options.tls });
    const scheme = options.tls ? "rediss" : "redis";
    return {
      port,
      url: `${scheme}://127.0.0.1:${port}`,
      adminUrl: `${scheme}://${users.admin.username}:${users.admin.password}@127.0.0.1:${port}`,
      users,
      tls: options.tls,
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
export async function startValkeyCluster(masters = 3, options: { tls?: ValkeyTlsFiles } = {}): Promise<ValkeyCluster> {
  const dirs: string[] = [];
  const processes: RunningProcess[] = [];
  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    const usersDir = await mkdtemp(path.join(tmpdir(), "hexr-valkey-cluster-users-"));
    dirs.push(usersDir);
    const users = valkeyUsers(usersDir);
    const nodes: ValkeyNode[] = [];
    for (let i = 0; i < masters; i++) {
      const dir = await mkdtemp(path.join(tmpdir(), `hexr-valkey-cluster-${i}-`));
      dirs.push(dir);
      const started = await startServer({ dir, users, tls: options.tls, extraArgs: clusterArgs(dir, options.tls) });
      processes.push(started.process);
      nodes.push({ host: "127.0.0.1", port: started.port });
    }
    const admin = adminCli(users, options.tls);
    await createCluster(nodes, admin);
    await waitForClusterOk(nodes, admin);
    return { nodes, users, tls: options.tls, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface ServerSpec {
  dir: string;
  fixedPort?: number;
  users: ValkeyUsers;
  tls?: ValkeyTlsFiles;
  /** Extra server arguments; a function so cluster nodes can pick a fresh bus port per attempt. */
  extraArgs?: () => Promise<string[]>;
}

async function startServer(spec: ServerSpec): Promise<{ process: RunningProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = spec.fixedPort ?? (await freePort());
    try {
      const extraArgs = (await spec.extraArgs?.()) ?? [];
      const process = await startProcess(valkeyProcessSpec(port, spec.dir, { aclFile: spec.users.aclFile, tls: spec.tls, extraArgs }));
      return { process, port };
    } catch (error) {
      const portTaken = /Address already in use/i.test(String(error));
      if (!portTaken || spec.fixedPort !== undefined || attempt >= BIND_ATTEMPTS) throw error;
    }
  }
}

export interface ValkeyProcessOptions {
  /** ACL file with the users (valkeyUsers().aclFile); required: no server runs without authentication. */
  aclFile: string;
  tls?: ValkeyTlsFiles;
  extraArgs?: string[];
}

/** How a Valkey server is started everywhere: loopback only, nothing persisted, authentication required. */
export function valkeyProcessSpec(port: number, dir: string, options: ValkeyProcessOptions): ProcessSpec {
  const listen = options.tls
    ? [
        "--port", "0", "--tls-port", String(port),
        "--tls-cert-file", options.tls.cert, "--tls-key-file", options.tls.key,
        "--tls-ca-cert-file", options.tls.ca, "--tls-auth-clients", "yes",
      ]
    : ["--port", String(port)];
  return {
    name: `valkey:${port}`,
    command: tools.valkeyServer(),
    args: [
      ...listen,
      "--bind", "127.0.0.1",
      "--aclfile", options.aclFile,
      "--save", "", "--appendonly", "no", "--dir", dir,
      ...(options.extraArgs ?? []),
    ],
    ready: { logLine: READY_LINE },
  };
}

function clusterArgs(dir: string, tls: ValkeyTlsFiles | undefined): () => Promise<string[]> {
  // The bus port defaults to port + 10000, which is often above 65535 for kernel-chosen ports.
  // The cluster bus has no ACL; with TLS it is mutually authenticated by the same certificates.
  return async () => [
    "--cluster-enabled", "yes",
    "--cluster-config-file", path.join(dir, "nodes.conf"),
    "--cluster-node-timeout", "5000",
    "--cluster-port", String(await freePort()),
    ...(tls ? ["--tls-cluster", "yes", "--tls-replication", "yes"] : []),
  ];
}

/** valkey-cli beside valkey-server, redis-cli beside redis-server. */
export function cliBinary(): string {
  const server = tools.valkeyServer();
  return path.join(path.dirname(server), path.basename(server).replace(/-server$/, "-cli"));
}

interface Cli {
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** The CLI as the admin user: password in the environment (REDISCLI_AUTH), never on its command line. */
function adminCli(users: ValkeyUsers, tls: ValkeyTlsFiles | undefined): Cli {
  const tlsArgs = tls ? ["--tls", "--cacert", tls.ca, "--cert", tls.cert, "--key", tls.key] : [];
  return { args: ["--user", users.admin.username, ...tlsArgs], env: { ...process.env, REDISCLI_AUTH: users.admin.password } };
}

async function createCluster(nodes: ValkeyNode[], cli: Cli): Promise<void> {
  const addresses = nodes.map((n) => `${n.host}:${n.port}`);
  await run(cliBinary(), [...cli.args, "--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"], {
    timeout: 60_000,
    env: cli.env,
  });
}

async function waitForClusterOk(nodes: ValkeyNode[], cli: Cli, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const infos = await Promise.all(nodes.map((n) => clusterInfo(n, cli)));
    const converged = infos.every(
      (info) => /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info),
    );
    if (converged) return;
    last = infos.join("\n");
    await sleep(100);
  }
  throw new Error(`Valkey cluster did not reach cluster_state:ok within ${timeoutMs} ms:\n${last}`);
}

async function clusterInfo(node: ValkeyNode, cli: Cli): Promise<string> {
  const { stdout } = await run(cliBinary(), [...cli.args, "-h", node.host, "-p", String(node.port), "cluster", "info"], {
    timeout: 5_000,
    env: cli.env,
  });
  return stdout;
}

/** RESP commands over a plain TCP connection, as an attacker's netcat would send them; the first line of each reply. */
export function respCommands(port: number, ...commands: string[][]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      const lines = received.split("\r\n").filter((line) => /^[-+:$*]/.test(line));
      if (lines.length >= commands.length) {
        socket.destroy();
        resolve(lines);
      }
    });
    socket.on("error", reject);
    for (const args of commands) socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
  });
}
