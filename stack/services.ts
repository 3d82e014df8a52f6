// How each service behind the sidecar is started: the real binaries (Valkey, OPA, moto) and the
// project's own services (bridge, injector) as separate Node processes, exactly as they run alone.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { motoProcessSpec } from "../support/moto.ts";
import { opaProcessSpec } from "../support/opa.ts";
import { valkeyProcessSpec } from "../support/valkey.ts";
import { startProcess } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";
import { devInjectorConfig } from "../injector/dev-config.ts";
import { createPart, type Part } from "./part.ts";

const LISTENING = /listening on https?:\/\//;

/** `node --import tsx script.ts ...`: one process (no tsx wrapper), so SIGTERM reaches the service itself. */
function typeScriptCommand(script: string, args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ["--import", "tsx", path.join(projectRoot, script), ...args] };
}

function logFileFor(logDir: string | undefined, name: string): string | undefined {
  return logDir ? path.join(logDir, `${name}.log`) : undefined;
}

export function valkeyPart(port: number, dataDir: string, logDir?: string): Part {
  return createPart({
    name: "valkey",
    port,
    url: `redis://127.0.0.1:${port}`,
    logFile: logFileFor(logDir, "valkey"),
    launch: () => startProcess(valkeyProcessSpec(port, dataDir)),
  });
}

export function bridgePart(options: { port: number; valkeyUrl: string; keyFile: string; logDir?: string }): Part {
  const { command, args } = typeScriptCommand("bridge/main.ts", [
    "--port", String(options.port),
    "--valkey", options.valkeyUrl,
    "--key-file", options.keyFile,
  ]);
  return createPart({
    name: "bridge",
    port: options.port,
    url: `http://127.0.0.1:${options.port}`,
    logFile: logFileFor(options.logDir, "bridge"),
    launch: () => startProcess({ name: "bridge", command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}

export function opaPart(port: number, logDir?: string): Part {
  return createPart({
    name: "opa",
    port,
    url: `http://127.0.0.1:${port}`,
    logFile: logFileFor(logDir, "opa"),
    launch: () => startProcess(opaProcessSpec(port)),
  });
}

export function motoPart(port: number, logDir?: string): Part {
  return createPart({
    name: "moto",
    port,
    url: `http://127.0.0.1:${port}`,
    logFile: logFileFor(logDir, "moto"),
    launch: () => startProcess(motoProcessSpec(port, mkdtempSync(path.join(tmpdir(), "hexr-moto-")))),
  });
}

export interface InjectorPartOptions {
  port: number;
  opaUrl: string;
  stsEndpoint: string;
  identityDir: string;
  /** Where the rendered injector config is written. */
  configFile: string;
  logDir?: string;
}

/** The injector with its dev configuration (injector/config.dev.json) pointed at this stack. */
export async function injectorPart(options: InjectorPartOptions): Promise<Part> {
  const config = await devInjectorConfig({
    port: options.port,
    opaUrl: options.opaUrl,
    stsEndpoint: options.stsEndpoint,
    identityDir: options.identityDir,
  });
  writeFileSync(options.configFile, JSON.stringify(config, null, 2) + "\n");
  const { command, args } = typeScriptCommand("injector/main.ts", ["--config", options.configFile]);
  return createPart({
    name: "injector",
    port: options.port,
    url: `https://127.0.0.1:${options.port}`,
    logFile: logFileFor(options.logDir, "injector"),
    launch: () => startProcess({ name: "injector", command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}
