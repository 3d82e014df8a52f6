// How each service behind the sidecar is started: the real binaries (Valkey, OPA, moto) and the
// project's own services (bridge, injector) as separate Node processes, exactly as they run alone.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { motoProcessSpec } from "../support/moto.ts";
import { opaProcessSpec } from "../support/opa.ts";
import { valkeyProcessSpec, type ValkeyTlsFiles, type ValkeyUsers } from "../support/valkey.ts";
import { startProcess } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";
import { devInjectorConfig } from "../injector/dev-config.ts";
import type { TlsFiles } from "../bridge/index.ts";
import { createPart, type Part } from "./part.ts";

const LISTENING = /listening on https?:\/\//;

/** `node --import tsx script.ts ...`: one process (no tsx wrapper), so SIGTERM reaches the service itself. */
function typeScriptCommand(script: string, args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ["--import", "tsx", path.join(projectRoot, script), ...args] };
}

function logFileFor(logDir: string | undefined, name: string): string | undefined {
  return logDir ? path.join(logDir, `${name}.log`) : undefined;
}

/** Valkey with its ACL users (no command without AUTH); TLS only when `tls` is given. */
export function valkeyPart(options: { port: number; dataDir: string; users: ValkeyUsers; tls?: ValkeyTlsFiles; logDir?: string }): Part {
  const { port, dataDir, users, tls } = options;
  return createPart({
    name: "valkey",
    port,
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    logFile: logFileFor(options.logDir, "valkey"),
    launch: () => startProcess(valkeyProcessSpec(port, dataDir, { aclFile: users.aclFile, tls })),
  });
}

export interface BridgePartOptions {
  port: number;
  valkeyUrl: string;
  /** hexr-bridge's password file (valkeyUsers().bridge.passwordFile). */
  valkeyPasswordFile: string;
  /** With a rediss:// URL: the CA of Valkey's certificate. */
  valkeyTlsCa?: string;
  keyFile: string;
  /** The bridge's X.509-SVID and the trust bundle (the dev CA). */
  tls: TlsFiles;
  accessFile: string;
  logDir?: string;
}

/** The bridge on loopback, HTTPS only, callers restricted by its access file. */
export function bridgePart(options: BridgePartOptions): Part {
  const { command, args } = typeScriptCommand("bridge/main.ts", [
    "--port", String(options.port),
    "--tls-cert", options.tls.cert,
    "--tls-key", options.tls.key,
    "--trust-bundle", options.tls.trustBundle,
    "--access-file", options.accessFile,
    "--valkey", options.valkeyUrl,
    "--valkey-password-file", options.valkeyPasswordFile,
    ...(options.valkeyTlsCa ? ["--valkey-tls-ca", options.valkeyTlsCa] : []),
    "--key-file", options.keyFile,
  ]);
  return createPart({
    name: "bridge",
    port: options.port,
    url: `https://127.0.0.1:${options.port}`,
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
