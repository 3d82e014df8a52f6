// The real OPA server on loopback, serving the project's Rego policies (policy/) over its REST API,
// with that API closed to everyone but the holder of the injector's token.
//
// OPA runs with --authentication=token --authorization=basic: every request, the health check
// included, is put to policy/system/authz.rego, which allows only POST /v1/data/hexr/... decisions
// and GET /health, and only with the token. The token is random, written to a file of mode 0600 that
// the injector reads (opa.token_file); OPA itself gets only its SHA-256, in a data file
// (data.hexr_authz.token_sha256). Neither is ever on a command line or in the environment.
//
// OPA also loads the shared contract (contract/contract.json) under data.hexr.contract: the region
// allow-list and key format the policy uses are the very ones the filter and the injector use.
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { projectRoot, tools } from "./tools.ts";

export const DEFAULT_POLICY_DIR = path.join(projectRoot, "policy");
/** OPA's own access policy (package system.authz). */
export const AUTHZ_POLICY = path.join(DEFAULT_POLICY_DIR, "system", "authz.rego");
export const CONTRACT_FILE = path.join(projectRoot, "contract", "contract.json");
/** Where in OPA's data the contract is loaded (policy/exchange.rego reads data.hexr.contract). */
export const CONTRACT_DATA_PATH = "hexr.contract";

/** The injector's token for OPA and the file OPA checks it against. */
export interface OpaAuthFiles {
  /** The token itself, one line, mode 0600: for the injector (opa.token_file) only. */
  tokenFile: string;
  /** {"hexr_authz": {"token_sha256": ...}}: loaded by OPA as data. */
  authzDataFile: string;
}

/**
 * Creates the token (32 random bytes, base64url) and its hash file in `dir`, or keeps the ones
 * already there, so that OPA and the injector agree across restarts. The token file is always
 * 0600; the hash file is 0600 too unless `authzDataMode` says otherwise (a container running OPA
 * as another user must read it; it holds only a hash).
 */
export function ensureOpaToken(dir: string, authzDataMode = 0o600): OpaAuthFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = { tokenFile: path.join(dir, "opa-token"), authzDataFile: path.join(dir, "opa-authz.json") };
  if (!existsSync(files.tokenFile)) {
    try {
      writeFileSync(files.tokenFile, randomBytes(32).toString("base64url") + "\n", { mode: 0o600, flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error; // another process was first: use its token
    }
  }
  chmodSync(files.tokenFile, 0o600);
  const token = readFileSync(files.tokenFile, "utf8").trim();
  const hash = createHash("sha256").update(token).digest("hex");
  writeFileSync(files.authzDataFile, JSON.stringify({ hexr_authz: { token_sha256: hash } }) + "\n", { mode: authzDataMode });
  chmodSync(files.authzDataFile, authzDataMode);
  return files;
}

export interface OpaServerFiles {
  /** Policy and data directory; *_test.rego files are not loaded. */
  policyDir: string;
  /** OPA's access policy: loaded on its own when it is not inside policyDir. */
  authzPolicy: string;
  authzDataFile: string;
  contractFile: string;
  /** More data files (e.g. the stack's load-test settings). */
  dataFiles?: string[];
}

/**
 * `opa run` as every OPA of the project runs: server, token authentication and the access policy,
 * no version check (it would call out to the internet), without the policies' unit tests, and with
 * the contract under data.hexr.contract. docker-compose.yml runs the same arguments.
 */
export function opaServerArgs(addr: string, files: OpaServerFiles): string[] {
  const policyDir = path.resolve(files.policyDir);
  const authzInside = path.resolve(files.authzPolicy).startsWith(policyDir + path.sep);
  return [
    "run", "--server", "--addr", addr, "--skip-version-check", "--log-level", "error",
    "--authentication=token", "--authorization=basic",
    "--ignore", "*_test.rego",
    files.policyDir,
    ...(authzInside ? [] : [files.authzPolicy]),
    files.authzDataFile,
    `${CONTRACT_DATA_PATH}:${files.contractFile}`,
    ...(files.dataFiles ?? []),
  ];
}

export interface OpaProcessOptions {
  policyDir?: string;
  auth: OpaAuthFiles;
  dataFiles?: string[];
}

/** How OPA is started in the tests and the local stack: loopback only. */
export function opaProcessSpec(port: number, options: OpaProcessOptions): ProcessSpec {
  return {
    name: "opa",
    command: tools.opa(),
    args: opaServerArgs(`127.0.0.1:${port}`, {
      policyDir: options.policyDir ?? DEFAULT_POLICY_DIR,
      authzPolicy: AUTHZ_POLICY,
      authzDataFile: options.auth.authzDataFile,
      contractFile: CONTRACT_FILE,
      dataFiles: options.dataFiles,
    }),
    // Up, with the access policy in force: the health check without the token is refused.
    ready: { url: `http://127.0.0.1:${port}/health`, status: 401 },
    timeoutMs: 30_000,
  };
}

export interface OpaServer {
  port: number;
  url: string;
  /** The injector's token file (opa.token_file) and OPA's hash of it. */
  auth: OpaAuthFiles;
  /** SIGSTOP: OPA keeps its socket open but answers nothing, like a hung policy engine. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface StartOpaOptions {
  /** Policy and data directory (default policy/); *_test.rego files are not loaded. */
  policyDir?: string;
  port?: number;
  /** The token files to use (another server's, to restart it); default a fresh token, removed by stop(). */
  auth?: OpaAuthFiles;
  dataFiles?: string[];
}

// freePort() can race with another process taking the port before OPA binds it.
const BIND_ATTEMPTS = 3;

export async function startOpa(options: StartOpaOptions = {}): Promise<OpaServer> {
  const ownDir = options.auth ? undefined : mkdtempSync(path.join(tmpdir(), "hexr-opa-"));
  const auth = options.auth ?? ensureOpaToken(ownDir!);
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      const process = await startProcess(opaProcessSpec(port, { policyDir: options.policyDir, auth, dataFiles: options.dataFiles }));
      return handle(process, port, auth, ownDir);
    } catch (error) {
      if (options.port !== undefined || attempt >= BIND_ATTEMPTS) {
        if (ownDir) rmSync(ownDir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

function handle(process: RunningProcess, port: number, auth: OpaAuthFiles, ownDir: string | undefined): OpaServer {
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    auth,
    pause: () => process.child.kill("SIGSTOP"),
    resume: () => process.child.kill("SIGCONT"),
    async stop() {
      process.child.kill("SIGCONT"); // a paused server cannot act on SIGTERM
      await process.stop();
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
}
