// A real PostgreSQL server for tests, from Debian's binaries (/usr/lib/postgresql/{version}/bin,
// installed by scripts/bootstrap.sh): a fresh cluster in a temp dir, on 127.0.0.1 and a free port,
// with an application role that logs in with a SCRAM password kept in a 0600 file (what a
// deployment hands the vault), never in the URL. PostgreSQL refuses to run as root and the tests
// run as root, so initdb and the server run as the `postgres` system user.
//
// kill() is a crash, not a shutdown: SIGKILL to the postmaster and every backend, the data dir left
// as it was; restart() then starts a server on the same data dir and port, which replays its WAL.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort, startProcess, type RunningProcess } from "./processes.ts";

export interface PostgresServer {
  port: number;
  /** postgres://USER@127.0.0.1:PORT/DATABASE: no password in it (it is in passwordFile). */
  url: string;
  user: string;
  database: string;
  /** The application role's password, one line, mode 0600. */
  passwordFile: string;
  /** For tests that look into (or tamper with) the database directly. */
  clientConfig(): pg.ClientConfig;
  /** Everything the running server wrote to stdout and stderr. */
  output(): string;
  /** A fast shutdown (SIGINT), then the cluster is deleted. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and all its backends at once: a crash. The data dir stays. */
  kill(): Promise<void>;
  /** Starts the server again on the same data dir and port (after kill()). */
  restart(): Promise<void>;
}

export interface PostgresOptions {
  user?: string;
  database?: string;
}

const SUPERUSER = "postgres";
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** The newest PostgreSQL under /usr/lib/postgresql whose bin/postgres exists. */
export function postgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, "bin", "postgres"))) : [];
  if (versions.length === 0) throw new Error("PostgreSQL not found under /usr/lib/postgresql: run `npm run setup` (scripts/bootstrap.sh)");
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return path.join(root, newest, "bin");
}

/** The uid and gid of the `postgres` system user, whom the server runs as. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, SUPERUSER], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error("no `postgres` system user: install PostgreSQL with `npm run setup` (scripts/bootstrap.sh)");
  }
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const user = options.user ?? "hexr_vault";
  const database = options.database ?? user;
  if (!IDENTIFIER.test(user) || !IDENTIFIER.test(database)) throw new Error("user and database must be plain lower-case identifiers");
  const bin = postgresBinDir();
  const owner = postgresUser();
  const root = mkdtempSync(path.join(tmpdir(), "hexr-postgres-"));
  // The postgres user must reach its data dir through this root-owned dir, and read nothing else in it.
  chmodSync(root, 0o711);
  const dataDir = path.join(root, "data");
  mkdirSync(dataDir, { mode: 0o700 });
  chownSync(dataDir, owner.uid, owner.gid);

  const superPassword = randomBytes(18).toString("hex");
  const superPasswordFile = path.join(root, "superuser-password");
  writeFileSync(superPasswordFile, superPassword + "\n", { mode: 0o600 });
  chownSync(superPasswordFile, owner.uid, owner.gid);
  const password = randomBytes(18).toString("hex");
  const passwordFile = path.join(root, "password");
  writeFileSync(passwordFile, password + "\n", { mode: 0o600 });

  try {
    execFileSync(path.join(bin, "initdb"), [
      "-D", dataDir, "-U", SUPERUSER, "--pwfile", superPasswordFile, "--auth", "scram-sha-256",
      "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions",
    ], { uid: owner.uid, gid: owner.gid, stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`initdb failed: ${(error as Error).message}\n${stderr}`);
  }
  rmSync(superPasswordFile);

  const port = await freePort();
  const start = () =>
    startProcess({
      name: "postgres",
      command: path.join(bin, "postgres"),
      args: [
        "-D", dataDir, "-p", String(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", `unix_socket_directories=${dataDir}`,
        // What the vault relies on, said out loud rather than left to the defaults.
        "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
        "-c", "max_connections=40", "-c", "shared_buffers=16MB",
      ],
      cwd: root,
      uid: owner.uid,
      gid: owner.gid,
      ready: { logLine: /database system is ready to accept connections/ },
      timeoutMs: 30_000,
    });
  let running: RunningProcess;
  try {
    running = await start();
    await createRole({ host: "127.0.0.1", port, user: SUPERUSER, password: superPassword, database: "postgres" }, user, password, database);
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }

  return {
    port,
    url: `postgres://${user}@127.0.0.1:${port}/${database}`,
    user,
    database,
    passwordFile,
    clientConfig: () => ({ host: "127.0.0.1", port, user, database, password: readFileSync(passwordFile, "utf8").trim() }),
    output: () => running.output(),
    async stop() {
      await running.stop("SIGINT");
      rmSync(root, { recursive: true, force: true });
    },
    async kill() {
      const pid = running.child.pid!;
      const backends = childrenOf(pid);
      for (const child of [pid, ...backends]) {
        try {
          process.kill(child, "SIGKILL");
        } catch {}
      }
      await running.stop("SIGKILL");
      await waitUntilGone(backends);
    },
    async restart() {
      running = await start();
    },
  };
}

async function createRole(superuser: pg.ClientConfig, user: string, password: string, database: string): Promise<void> {
  const client = new pg.Client(superuser);
  await client.connect();
  try {
    // Identifiers are checked against IDENTIFIER and the password is hex: nothing here needs quoting.
    // CREATEDB: a test file makes a fresh database per case on one server.
    await client.query(`CREATE ROLE ${user} LOGIN CREATEDB PASSWORD '${password}'`);
    await client.query(`CREATE DATABASE ${database} OWNER ${user}`);
  } finally {
    await client.end();
  }
}

/** The pids whose parent is `pid` (the postmaster's backends and auxiliary processes). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse from the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {}
  }
  return children;
}

/** Until every pid has exited (a zombie counts as gone: it holds no shared memory any more). */
async function waitUntilGone(pids: number[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  const alive = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
      return false;
    }
  };
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error("postgres backends did not exit after SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
