// The services as the container images run them: `npm run build:services` (tsconfig.build.json)
// compiles them to dist/, and plain `node dist/<service>/main.js` runs them, with no TypeScript
// transpiler (tsx) anywhere: the build output is copied into a scratch folder laid out like the
// image's /app (dist/, package.json, node_modules), away from the sources, and run from there.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProcess } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import { testIdentity as injectorIdentity } from "../../injector/test/helpers.ts";
import { testIdentity as vaultIdentity, vaultConfig } from "../../vault/test/helpers.ts";

const run = promisify(execFile);
let app: string;

/** The environment a container would give: no tsx loader, none of the services' own variables. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: "" };
  for (const name of Object.keys(env)) if (/^HEXR_/.test(name)) delete env[name];
  return { ...env, ...extra };
}

/** Runs `node dist/<service>/main.js ...args` in the image-like folder; resolves with how it ended. */
async function node(service: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [path.join(app, "dist", service, "main.js"), ...args], { cwd: app, env: cleanEnv(env), timeout: 20_000 }).then(
    (done) => ({ code: 0, ...done }),
    (failed: { code: number; stdout: string; stderr: string }) => ({ code: failed.code, stdout: failed.stdout, stderr: failed.stderr }),
  );
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".js"))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

beforeAll(async () => {
  await run("npm", ["run", "-s", "build:services"], { cwd: projectRoot, timeout: 170_000 });
  app = mkdtempSync(path.join(tmpdir(), "hexr-compiled-"));
  // As the Dockerfiles lay out /app: the build output, package.json ("type": "module"), node_modules.
  cpSync(path.join(projectRoot, "dist"), path.join(app, "dist"), { recursive: true });
  writeFileSync(path.join(app, "package.json"), readFileSync(path.join(projectRoot, "package.json")));
  symlinkSync(path.join(projectRoot, "node_modules"), path.join(app, "node_modules"), "dir");
}, 180_000);

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe("npm run build:services", () => {
  it("emits ESM JavaScript for the three services, with .js import specifiers and the contract beside it", () => {
    for (const service of ["injector", "bridge", "vault"]) expect(existsSync(path.join(app, "dist", service, "main.js"))).toBe(true);
    expect(existsSync(path.join(app, "dist", "contract", "contract.json"))).toBe(true);
    const files = jsFiles(path.join(app, "dist"));
    expect(files.some((file) => /[\\/]test[\\/]/.test(file) || file.endsWith(".test.js"))).toBe(false);
    for (const file of files) expect(readFileSync(file, "utf8"), file).not.toMatch(/from "\.{1,2}\/[^"]*\.ts"|import\("\.{1,2}\/[^"]*\.ts"\)/);
  });
});

describe("node dist/<service>/main.js", () => {
  it("injector: serves from a config file and exits 0 on SIGTERM; a bad config exits 2 naming the field", async () => {
    const identity = await injectorIdentity();
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-compiled-injector-"));
    try {
      const config = path.join(dir, "injector.json");
      writeFileSync(config, JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        tls: { cert_file: identity.paths.injectorCert, key_file: identity.paths.injectorKey, client_ca_file: identity.paths.ca },
        jwt: { jwks_file: identity.paths.jwks },
        trust_domains: ["hexr.local"],
        opa: { url: "http://127.0.0.1:9" },
      }));
      const injector = await startProcess({
        name: "compiled-injector",
        command: process.execPath,
        args: [path.join(app, "dist", "injector", "main.js"), "--config", config],
        cwd: app,
        env: cleanEnv(),
        ready: { logLine: /listening on https:\/\/127\.0\.0\.1:\d+\n/ },
      });
      await injector.stop("SIGTERM");
      expect(injector.child.exitCode).toBe(0);

      const broken = path.join(dir, "broken.json");
      writeFileSync(broken, JSON.stringify({ jwt: { jwks_file: "x" }, trust_domains: ["hexr.local"], opa: { url: "http://127.0.0.1:9", timeout_ms: -1 } }));
      const failure = await node("injector", ["--config", broken]);
      expect(failure.code).toBe(2);
      expect(failure.stderr).toContain("injector config: opa.timeout_ms must be an integer from 1 to 60000");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("bridge: missing or unknown flags exit 2 with the usage", async () => {
    for (const args of [[], ["--no-such-flag"]]) {
      const failure = await node("bridge", args);
      expect(failure.code).toBe(2);
      expect(failure.stdout).toBe("");
      expect(failure.stderr).toMatch(/^hexr-bridge: /);
      expect(failure.stderr).toContain("usage: tsx bridge/main.ts");
    }
  });

  it("vault: serves on SQLite (the native better-sqlite3 binding) and exits 0 on SIGTERM; bad configs exit 2", async () => {
    const identity = await vaultIdentity();
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-compiled-vault-"));
    try {
      const config = vaultConfig(identity, { engine: "sqlite", path: path.join(dir, "vault.db") }, dir, { log_level: "error" });
      const good = path.join(dir, "vault.json");
      writeFileSync(good, JSON.stringify(config));
      const vault = await startProcess({
        name: "compiled-vault",
        command: process.execPath,
        args: [path.join(app, "dist", "vault", "main.js"), "--config", good],
        cwd: app,
        env: cleanEnv(),
        ready: { logLine: /listening on https:\/\/127\.0\.0\.1:\d+\n/ },
      });
      await vault.stop("SIGTERM");
      expect(vault.child.exitCode).toBe(0);
      expect(existsSync(path.join(dir, "vault.db"))).toBe(true);

      const missing = await node("vault", []);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/no config: give --config FILE or set HEXR_VAULT_CONFIG/);
      const bad = path.join(dir, "bad.json");
      writeFileSync(bad, JSON.stringify({ ...config, limits: { versions_kept: -1 } }));
      const invalid = await node("vault", [], { HEXR_VAULT_CONFIG: bad });
      expect(invalid.code).toBe(2);
      expect(invalid.stderr).toMatch(/vault config: limits.versions_kept must be an integer from 1 to 1000/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
