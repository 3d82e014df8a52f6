// injector/main.ts as the stack runs it: a child process, configured by file, stopped by signal.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProcess } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import { send, sidecarTls, testIdentity, type TestIdentity } from "./helpers.ts";

const tsx = path.join(projectRoot, "node_modules", ".bin", "tsx");
const main = path.join(projectRoot, "injector", "main.ts");
let identity: TestIdentity;
let configDir: string;

beforeAll(async () => {
  identity = await testIdentity();
  configDir = await mkdtemp(path.join(tmpdir(), "hexr-injector-config-"));
  // Paths relative to the config file, as an operator would write them.
  const relative = (file: string) => path.relative(configDir, file);
  await writeFile(path.join(configDir, "injector.json"), JSON.stringify({
    listen: { host: "127.0.0.1", port: 1 },
    tls: { cert_file: relative(identity.paths.injectorCert), key_file: relative(identity.paths.injectorKey), client_ca_file: relative(identity.paths.ca) },
    jwt: { jwks_file: relative(identity.paths.jwks) },
    trust_domains: ["hexr.local"],
    opa: { url: "http://127.0.0.1:9" },
  }));
  await writeFile(path.join(configDir, "broken.json"), JSON.stringify({ jwt: { jwks_file: "x" }, trust_domains: ["hexr.local"], opa: { url: "http://127.0.0.1:9", timeout_ms: -1 } }));
});

afterAll(async () => {
  await identity?.remove();
  if (configDir) await rm(configDir, { recursive: true, force: true });
});

describe("injector/main.ts", () => {
  it("prints its URL when ready, serves, and exits 0 on SIGTERM", async () => {
    const injector = await startProcess({
      name: "injector",
      command: tsx,
      args: [main, "--port", "0"],
      env: { HEXR_INJECTOR_CONFIG: path.join(configDir, "injector.json") },
      ready: { logLine: /listening on https:\/\/127\.0\.0\.1:\d+\n/ },
      timeoutMs: 20_000,
    });
    const url = /listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(injector.output())![1];
    const health = await send(url, { method: "GET", path: "/healthz", tls: await sidecarTls(identity) });
    expect(health.json).toEqual({ status: "ok" });
    await injector.stop("SIGTERM");
    expect(injector.child.exitCode).toBe(0);
  });

  it("refuses a bad configuration with exit code 2 and the field's name", async () => {
    const run = promisify(execFile);
    const failure = await run(tsx, [main, "--config", path.join(configDir, "broken.json")]).catch((error) => error);
    expect(failure.code).toBe(2);
    expect(failure.stderr).toContain("injector config: opa.timeout_ms must be an integer from 1 to 60000");
  });
});
