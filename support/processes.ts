// Starting and stopping the real servers that tests and the local stack need, on loopback only.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect } from "node:net";

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Readiness =
  | { port: number }
  | { url: string; status?: number }
  | { logLine: RegExp }
  /** Ready once `check` resolves true (e.g. Envoy's admin /ready over its Unix socket). */
  | { check: () => Promise<boolean> };

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ready: Readiness;
  timeoutMs?: number;
  /** Run as this user (and group of the same number): how SPIRE's unix attestor tells processes apart. */
  uid?: number;
  /** Run with this group instead of `uid`'s number (a system user's own group, e.g. postgres). */
  gid?: number;
}

export interface RunningProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a process and resolves once it is ready; rejects (with its output) if it exits or times out. */
export async function startProcess(spec: ProcessSpec): Promise<RunningProcess> {
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(spec.uid === undefined ? {} : { uid: spec.uid, gid: spec.gid ?? spec.uid }),
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const running: RunningProcess = {
    name: spec.name,
    child,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (hasExited) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };

  const deadline = Date.now() + (spec.timeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    if (hasExited) {
      throw new Error(`${spec.name} exited before it was ready (code ${child.exitCode}):\n${output.slice(-4000)}`);
    }
    if (await isReady(spec.ready, output)) return running;
    await sleep(50);
  }
  await running.stop("SIGKILL");
  throw new Error(`${spec.name} was not ready within ${spec.timeoutMs ?? 20_000} ms:\n${output.slice(-4000)}`);
}

async function isReady(ready: Readiness, output: string): Promise<boolean> {
  if ("port" in ready) return canConnect(ready.port);
  if ("logLine" in ready) return ready.logLine.test(output);
  if ("check" in ready) return ready.check().catch(() => false);
  try {
    const response = await fetch(ready.url, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return ready.status === undefined ? response.ok : response.status === ready.status;
  } catch {
    return false;
  }
}
