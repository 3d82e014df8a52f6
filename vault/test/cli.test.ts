// vault/main.ts as a command: usage and config mistakes exit 2 with a message naming the problem,
// before anything listens. (Serving, SIGTERM, rotate-kek and audit run in durability, rotation and
// audit tests.)
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../support/tools.ts";
import { tempDir, testIdentity, vaultConfig } from "./helpers.ts";

const run = promisify(execFile);
const dir = tempDir();
afterAll(() => dir.remove());

async function vault(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ["--import", "tsx", "vault/main.ts", ...args], { cwd: projectRoot, env: { ...process.env, HEXR_VAULT_CONFIG: "" } }).then(
    (done) => ({ code: 0, ...done }),
    (failed: { code: number; stdout: string; stderr: string }) => ({ code: failed.code, stdout: failed.stdout, stderr: failed.stderr }),
  );
}

describe("npm run vault", () => {
  it("exits 2 with the usage for a missing config, an unknown command or option", async () => {
    const results = await Promise.all([vault(), vault("frobnicate", "--config", "x.json"), vault("--cofnig", "x.json"), vault("audit", "erase", "--config", "x.json")]);
    for (const result of results) {
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/usage: npm run vault/);
    }
    expect(results[0].stderr).toMatch(/no config: give --config FILE or set HEXR_VAULT_CONFIG/);
  });

  it("exits 2 naming the config field that is wrong, and naming a store it cannot open", async () => {
    const id = await testIdentity();
    const config = vaultConfig(id, { engine: "sqlite", path: path.join(dir.dir, "vault.db") }, dir.dir);
    const bad = path.join(dir.dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ ...config, limits: { versions_kept: -1 } }));
    const result = await vault("--config", bad);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/vault config: limits.versions_kept must be an integer from 1 to 1000/);

    const unreachable = path.join(dir.dir, "unreachable.json");
    writeFileSync(unreachable, JSON.stringify({ ...config, store: { engine: "postgres", url: "postgres://hexr_vault@127.0.0.1:1/vault", connect_timeout_ms: 500 } }));
    const down = await vault("--config", unreachable);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/store unavailable: PostgreSQL: .*ECONNREFUSED/);
  });
});
