// One Envoy sidecar: renders envoy/sidecar.yaml into its own run directory, validates it, runs
// the real binary, restarts it on the same ports (a restart empties L1: shared data lives in the
// process), and reads its admin, which listens on a Unix socket in that directory (no TCP port).
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { promisify } from "node:util";
import { startProcess, type RunningProcess } from "../support/processes.ts";
import { tools } from "../support/tools.ts";
import { renderSidecarConfig, type MetadataListener, type SidecarValues } from "./render.ts";
import { LogSink } from "./logs.ts";

const run = promisify(execFile);

export type EnvoyLogLevel = "info" | "warning" | "error" | "critical";

export interface EnvoyOptions {
  /** A name unique within the stack ("pod-a"); names the run directory and the node id. */
  name: string;
  runDir: string;
  values: Omit<SidecarValues, "nodeId" | "accessLogPath" | "adminSocket">;
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

/** One metadata listener, as a stock SDK finds it. */
export interface MetadataDoors {
  name: string;
  /** The identity it serves. */
  spiffeId: string;
  /** 127.0.0.1:PORT (GCE_METADATA_HOST, GCE_METADATA_IP); undefined without the GCE door. */
  gceMetadataHost: string | undefined;
  /** IDENTITY_ENDPOINT and IDENTITY_HEADER; undefined without the Azure door. */
  azureIdentityEndpoint: string | undefined;
  azureIdentityHeader: string | undefined;
}

export interface EnvoySidecar {
  readonly name: string;
  readonly configPath: string;
  readonly accessLogPath: string;
  /** http://127.0.0.1:PORT of the plain agent listener. */
  readonly agentUrl: string;
  /** https://127.0.0.1:PORT of the mTLS agent listener. */
  readonly agentMtlsUrl: string;
  /** The AWS container-credentials door (AWS_CONTAINER_CREDENTIALS_FULL_URI); undefined when the filter has none. */
  readonly awsCredentialsUrl: string | undefined;
  /** The metadata listeners: one role's GCE and Azure doors each. */
  readonly metadataListeners: readonly MetadataDoors[];
  /** http://127.0.0.1:PORT/stats/prometheus: the stats listener, the only TCP door to the admin. */
  readonly statsUrl: string;
  /** Envoy's admin: a Unix socket (mode 0600, in a directory of mode 0700). */
  readonly adminSocket: string;
  readonly running: boolean;
  /** The Envoy process's id (memory readings of the soak run); undefined while stopped. */
  readonly pid: number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stop then start on the same ports: L1 (proxy shared data) is gone afterwards. */
  restart(): Promise<void>;
  /** Counters and gauges from admin /stats whose names match `filter` (a regular expression), over the admin socket. */
  stats(filter?: string): Promise<Map<string, number>>;
  /** Any admin request over the socket (e.g. GET /memory). */
  admin(pathAndQuery: string, method?: string): Promise<AdminAnswer>;
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

export interface RenderedSidecar {
  configPath: string;
  accessLogPath: string;
  adminSocket: string;
}

/**
 * Writes the sidecar's config into `dir`. The admin socket goes into a directory of its own, mode
 * 0700: Envoy creates the socket and only then sets its mode, and the directory closes that gap.
 */
export function renderSidecarInto(dir: string, name: string, values: EnvoyOptions["values"]): RenderedSidecar {
  const adminDir = path.join(dir, "admin");
  mkdirSync(adminDir, { recursive: true, mode: 0o700 });
  chmodSync(adminDir, 0o700);
  const configPath = path.join(dir, "envoy.yaml");
  const accessLogPath = path.join(dir, "access.log");
  const adminSocket = path.join(adminDir, "admin.sock");
  writeFileSync(configPath, renderSidecarConfig({ ...values, nodeId: name, accessLogPath, adminSocket }));
  return { configPath, accessLogPath, adminSocket };
}

export interface AdminAnswer {
  status: number;
  text: string;
}

/** One request to an Envoy admin listening on the Unix socket `socketPath`. */
export function adminRequest(socketPath: string, pathAndQuery: string, method = "GET", timeoutMs = 10_000): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, path: pathAndQuery, method, headers: { host: "envoy-admin" }, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
    });
    request.on("timeout", () => request.destroy(new Error(`admin ${method} ${pathAndQuery} timed out`)));
    request.on("error", reject);
    request.end();
  });
}

/** Counters and gauges from the admin's /stats whose names match `filter` (a regular expression). */
export async function adminStats(socketPath: string, filter?: string): Promise<Map<string, number>> {
  const query = filter ? `?filter=${encodeURIComponent(filter)}` : "";
  const answer = await adminRequest(socketPath, `/stats${query}`);
  if (answer.status !== 200) throw new Error(`admin /stats answered ${answer.status}`);
  return parseStats(answer.text);
}

/** The admin answers /ready with 200 once the server is live (its listeners and clusters initialised). */
export async function adminReady(socketPath: string): Promise<boolean> {
  return (await adminRequest(socketPath, "/ready", "GET", 1000)).status === 200;
}

export function createEnvoySidecar(options: EnvoyOptions): EnvoySidecar {
  const dir = path.join(options.runDir, `envoy-${options.name}`);
  const { configPath, accessLogPath, adminSocket } = renderSidecarInto(dir, options.name, options.values);
  const { values } = options;
  const log = new LogSink(options.logFile);
  let process: RunningProcess | undefined;

  const sidecar: EnvoySidecar = {
    name: options.name,
    configPath,
    accessLogPath,
    agentUrl: `http://127.0.0.1:${values.agentPort}`,
    agentMtlsUrl: `https://127.0.0.1:${values.agentMtlsPort}`,
    awsCredentialsUrl: awsCredentialsUrl(values),
    metadataListeners: (values.metadataListeners ?? []).map(metadataDoors),
    statsUrl: `http://127.0.0.1:${values.statsPort}/stats/prometheus`,
    adminSocket,
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
          ready: { check: () => adminReady(adminSocket) },
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
    stats: (filter) => adminStats(adminSocket, filter),
    admin: (pathAndQuery, method) => adminRequest(adminSocket, pathAndQuery, method),
    logs: () => log.text(),
    accessLog: () => readTextIfExists(accessLogPath),
  };
  return sidecar;
}

function awsCredentialsUrl(values: EnvoyOptions["values"]): string | undefined {
  const door = values.filterConfiguration.aws_container as { path?: string } | null | undefined;
  return door ? `http://127.0.0.1:${values.agentPort}${door.path ?? "/v1/aws/credentials"}` : undefined;
}

function metadataDoors(listener: MetadataListener): MetadataDoors {
  const filter = listener.filterConfiguration as {
    static_spiffe_id: string;
    gce_metadata?: object;
    azure_managed_identity?: { path?: string; identity_header: string };
  };
  const host = `127.0.0.1:${listener.port}`;
  const azure = filter.azure_managed_identity;
  return {
    name: listener.name,
    spiffeId: filter.static_spiffe_id,
    gceMetadataHost: filter.gce_metadata ? host : undefined,
    azureIdentityEndpoint: azure ? `http://${host}${azure.path ?? "/metadata/identity/oauth2/token"}` : undefined,
    azureIdentityHeader: azure?.identity_header,
  };
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
