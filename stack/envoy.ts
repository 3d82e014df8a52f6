// One Envoy sidecar: renders envoy/sidecar.yaml into its own run directory, validates it, runs
// the real binary, restarts it on the same ports (a restart empties L1: shared data lives in the
// process), and reads its admin endpoint.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { startProcess, type RunningProcess } from "../support/processes.ts";
import { tools } from "../support/tools.ts";
import { renderSidecarConfig, type SidecarValues } from "./render.ts";
import { LogSink } from "./logs.ts";

const run = promisify(execFile);

export type EnvoyLogLevel = "info" | "warning" | "error" | "critical";

export interface EnvoyOptions {
  /** A name unique within the stack ("pod-a"); names the run directory and the node id. */
  name: string;
  runDir: string;
  values: Omit<SidecarValues, "nodeId" | "accessLogPath">;
  /** Worker threads (`--concurrency`). */
  concurrency: number;
  /**
   * Envoy's log level (`-l`). Nothing below info on purpose: at debug, Envoy logs request headers
   * and jwt_authn logs the tokens it parses.
   */
  logLevel?: EnvoyLogLevel;
  /** The exchange filter's own log level (`--component-log-level wasm:...`); it never logs secrets. */
  wasmLogLevel?: "trace" | "debug" | "info" | "warning" | "error";
  /** Extra place to copy Envoy's output to (the launcher's log files). */
  logFile?: string;
}

export interface EnvoySidecar {
  readonly name: string;
  readonly configPath: string;
  readonly accessLogPath: string;
  /** http://127.0.0.1:PORT of the plain agent listener. */
  readonly agentUrl: string;
  /** https://127.0.0.1:PORT of the mTLS agent listener. */
  readonly agentMtlsUrl: string;
  readonly adminUrl: string;
  readonly running: boolean;
  /** The Envoy process's id (memory readings of the soak run); undefined while stopped. */
  readonly pid: number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stop then start on the same ports: L1 (proxy shared data) is gone afterwards. */
  restart(): Promise<void>;
  /** Counters and gauges from admin /stats whose names match `filter` (a regular expression). */
  stats(filter?: string): Promise<Map<string, number>>;
  /** Everything Envoy wrote to stdout/stderr, over every start. */
  logs(): string;
  accessLog(): string;
}

/** `envoy --mode validate` for a rendered config: resolves, or rejects with Envoy's own message. */
export async function validateEnvoyConfig(configPath: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(tools.envoy(), ["--mode", "validate", "-c", configPath, "-l", "warn"], {
      timeout: 60_000,
    });
    return stdout + stderr;
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    throw new Error(`envoy --mode validate rejected ${configPath}:\n${stderr}${stdout}`);
  }
}

export function renderSidecarInto(dir: string, name: string, values: EnvoyOptions["values"]): { configPath: string; accessLogPath: string } {
  mkdirSync(dir, { recursive: true });
  const configPath = path.join(dir, "envoy.yaml");
  const accessLogPath = path.join(dir, "access.log");
  writeFileSync(configPath, renderSidecarConfig({ ...values, nodeId: name, accessLogPath }));
  return { configPath, accessLogPath };
}

export function createEnvoySidecar(options: EnvoyOptions): EnvoySidecar {
  const dir = path.join(options.runDir, `envoy-${options.name}`);
  const { configPath, accessLogPath } = renderSidecarInto(dir, options.name, options.values);
  const { values } = options;
  const adminUrl = `http://127.0.0.1:${values.adminPort}`;
  const log = new LogSink(options.logFile);
  let process: RunningProcess | undefined;

  const sidecar: EnvoySidecar = {
    name: options.name,
    configPath,
    accessLogPath,
    agentUrl: `http://127.0.0.1:${values.agentPort}`,
    agentMtlsUrl: `https://127.0.0.1:${values.agentMtlsPort}`,
    adminUrl,
    get running() {
      return process !== undefined;
    },
    get pid() {
      return process?.child.pid;
    },
    async start() {
      if (process) return;
      process = log.attach(
        await startProcess({
          name: `envoy:${options.name}`,
          command: tools.envoy(),
          args: [
            "-c", configPath,
            "--concurrency", String(options.concurrency),
            // No hot restart, so no shared-memory region: any number of sidecars run side by side,
            // and a killed one leaves nothing behind.
            "--disable-hot-restart",
            "-l", options.logLevel ?? "info",
            ...(options.wasmLogLevel ? ["--component-log-level", `wasm:${options.wasmLogLevel}`] : []),
          ],
          ready: { url: `${adminUrl}/ready` },
          timeoutMs: 30_000,
        }),
      );
    },
    async stop() {
      const running = process;
      process = undefined;
      await running?.stop();
    },
    async restart() {
      await sidecar.stop();
      await sidecar.start();
    },
    async stats(filter) {
      const query = filter ? `?filter=${encodeURIComponent(filter)}` : "";
      const response = await fetch(`${adminUrl}/stats${query}`);
      if (!response.ok) throw new Error(`admin /stats answered ${response.status}`);
      return parseStats(await response.text());
    },
    logs: () => log.text(),
    accessLog: () => readTextIfExists(accessLogPath),
  };
  return sidecar;
}

/** `name: 12` lines (counters and gauges); histogram lines (`name: P0(...) ...`) are skipped. */
export function parseStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([^:\s]+): (\d+)$/.exec(line.trim());
    if (match) stats.set(match[1], Number(match[2]));
  }
  return stats;
}

function readTextIfExists(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
