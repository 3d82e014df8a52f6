// A 201 means durable: the vault runs as a real process (node --import tsx vault/main.ts, what
// `npm run vault` runs), puts are sent, and the moment a 201 arrives the vault gets kill -9 (and,
// on PostgreSQL, so does the database server). After both restart, every put that was answered 201
// is there. The process's own stdout and stderr never hold a value; SIGTERM shuts it down cleanly.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, startProcess, type RunningProcess } from "../../support/processes.ts";
import { startPostgres, type PostgresServer } from "../../support/postgres.ts";
import { projectRoot } from "../../support/tools.ts";
import {
  agentId, ENGINES, expectError, SIDECAR_ACME, startTestVault, tempDir, testIdentity, vaultClient, vaultConfig, type Reply,
} from "./helpers.ts";

const dirs: { remove(): void }[] = [];
afterAll(() => dirs.forEach((dir) => dir.remove()));

async function startVaultProcess(configFile: string): Promise<RunningProcess> {
  return startProcess({
    name: "vault",
    command: process.execPath,
    args: ["--import", "tsx", "vault/main.ts", "--config", configFile],
    cwd: projectRoot,
    ready: { logLine: /listening on https:\/\/127\.0\.0\.1:\d+/ },
    timeoutMs: 20_000,
  });
}

describe.each(ENGINES)("durability on %s", (engine) => {
  it("keeps every put answered 201 across kill -9 of the vault (and of PostgreSQL)", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const id = await testIdentity();
    let postgres: PostgresServer | undefined;
    let store: Record<string, unknown>;
    if (engine === "postgres") {
      postgres = await startPostgres();
      store = { engine, url: postgres.url, password_file: postgres.passwordFile };
    } else {
      store = { engine, path: path.join(dir.dir, "vault.db") };
    }
    const port = await freePort();
    const configFile = path.join(dir.dir, "vault.json");
    writeFileSync(configFile, JSON.stringify(vaultConfig(id, store, dir.dir, { listen: { host: "127.0.0.1", port }, log_level: "debug" })));
    const svid = await id.svid(SIDECAR_ACME);
    const client = () => vaultClient(`https://127.0.0.1:${port}`, { ca: id.paths.ca, cert: svid.cert, key: svid.key }, id);
    const outputs: string[] = [];
    let vault = await startVaultProcess(configFile);
    try {
      const api = client();
      const value = (i: number) => `durable-secret-value-${engine}-${i}`;
      // One put, killed the instant its 201 arrives.
      const first = await api.put("FIRST", value(0));
      expect(first.status).toBe(201);
      vault.child.kill("SIGKILL");
      await postgres?.kill();
      outputs.push(vault.output());
      await vault.stop();
      api.close();

      await postgres?.restart();
      vault = await startVaultProcess(configFile);
      const again = client();
      expect((await again.get("FIRST")).json().value).toBe(value(0));

      // A burst of concurrent puts, killed at the fifth 201: every one answered 201 survives.
      const answered: number[] = [];
      let killed = false;
      const puts = Array.from({ length: 16 }, (_, i) =>
        again.put(`BURST_${i}`, value(i + 1), { as: agentId("acme-corp", `burst-${i % 4}`, "main") }).then(
          (reply: Reply) => {
            if (reply.status === 201 && !killed) {
              answered.push(i);
              if (answered.length === 5) {
                killed = true;
                vault.child.kill("SIGKILL");
                void postgres?.kill();
              }
            }
          },
          () => {}, // connections cut by the kill
        ),
      );
      await Promise.all(puts);
      expect(answered.length).toBeGreaterThanOrEqual(5);
      outputs.push(vault.output());
      await vault.stop();
      again.close();

      if (postgres) {
        await postgres.kill(); // idempotent: make sure it is down before restarting
        await postgres.restart();
      }
      vault = await startVaultProcess(configFile);
      const after = client();
      for (const i of answered) {
        const reply = await after.get(`BURST_${i}`, { as: agentId("acme-corp", `burst-${i % 4}`, "main") });
        expect(reply.json().value).toBe(value(i + 1));
      }
      expect((await after.get("FIRST")).json().value).toBe(value(0));
      after.close();

      // SIGTERM: a clean exit.
      await vault.stop("SIGTERM");
      expect(vault.child.exitCode).toBe(0);
      outputs.push(vault.output());
      const everything = outputs.join("\n");
      expect(everything).toMatch(/"operation":"put"/); // the logs are there, and hold no value:
      expect(everything).not.toMatch(/durable-secret-value/);
    } finally {
      await vault.stop("SIGKILL");
      await postgres?.stop();
    }
  });
});

describe("PostgreSQL going away under a running vault", () => {
  it("answers 503 with nothing stored while it is down, and serves again once it is back", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const postgres = await startPostgres();
    const vault = await startTestVault(
      vaultConfig(await testIdentity(), { engine: "postgres", url: postgres.url, password_file: postgres.passwordFile, connect_timeout_ms: 500, statement_timeout_ms: 1000 }, dir.dir),
    );
    try {
      const api = await vault.client(SIDECAR_ACME);
      expect((await api.put("UP", "up-value")).status).toBe(201);
      await postgres.kill();
      expectError(await api.put("DOWN", "down-value"), 503, "CredentialError", ["down-value"]);
      expectError(await api.get("UP"), 503, "CredentialError", ["up-value"]);
      await postgres.restart();
      expectError(await api.get("DOWN"), 404, "BadRequest");
      expect((await api.get("UP")).json().value).toBe("up-value");
      expect((await api.put("DOWN", "down-value")).status).toBe(201);
      expect(vault.logs()).toMatch(/store unavailable/);
      expect(vault.logs()).not.toMatch(/down-value|up-value/);
    } finally {
      await vault.close();
      await postgres.stop();
    }
  });
});
