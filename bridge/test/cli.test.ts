// The CLI as the local stack and operators run it: `tsx bridge/main.ts ...` as a real process.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startProcess } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import { startValkey, type ValkeyServer } from "../../support/valkey.ts";
import { bridgeClient, credKey } from "./helpers.ts";

const TSX = path.join(projectRoot, "node_modules", ".bin", "tsx");
const MAIN = path.join(projectRoot, "bridge", "main.ts");
const LISTENING = /listening on (http:\/\/127\.0\.0\.1:(\d+))/;

/** Runs the CLI expecting it to fail at startup; resolves with its exit code and stderr. */
async function failingRun(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)(TSX, [MAIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
  } catch (error) {
    const failure = error as { code: number; stderr: string };
    return { code: failure.code, stderr: failure.stderr };
  }
  throw new Error("the bridge started although it should have refused");
}

describe("bridge CLI", () => {
  let valkey: ValkeyServer;
  let dir: string;
  let keyFile: string;

  beforeAll(async () => {
    valkey = await startValkey();
    dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-cli-"));
    keyFile = path.join(dir, "bridge.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"));
  });
  afterAll(async () => {
    await valkey?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("prints one listening line, serves, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const bridge = await startProcess({
      name: "bridge-cli",
      command: TSX,
      args: [MAIN, "--port", String(port), "--valkey", valkey.url, "--key-file", keyFile],
      ready: { logLine: LISTENING },
    });
    try {
      const [line, url, printedPort] = LISTENING.exec(bridge.output())!;
      expect(line).toBe(`listening on http://127.0.0.1:${port}`);
      expect(Number(printedPort)).toBe(port);
      const api = bridgeClient(url);
      expect((await api.health()).status).toBe(200);
      expect((await api.put(credKey("cli", "a1"), "CLIVALUE")).status).toBe(204);
      expect((await api.get(credKey("cli", "a1"))).body.toString()).toBe("CLIVALUE");
    } finally {
      await bridge.stop("SIGTERM");
    }
    expect(bridge.child.exitCode).toBe(0);
    expect(bridge.output()).not.toContain("CLIVALUE");
  });

  it("takes its settings from the environment, and --create-key-file makes a dev key", async () => {
    const devKey = path.join(dir, ".dev", "bridge.key");
    const bridge = await startProcess({
      name: "bridge-cli-env",
      command: TSX,
      args: [MAIN, "--create-key-file"],
      env: { HEXR_BRIDGE_PORT: "0", HEXR_BRIDGE_VALKEY: valkey.url, HEXR_BRIDGE_KEY_FILE: devKey },
      ready: { logLine: LISTENING },
    });
    try {
      expect(existsSync(devKey)).toBe(true);
      const [, url] = LISTENING.exec(bridge.output())!;
      expect((await bridgeClient(url).health()).status).toBe(200);
    } finally {
      await bridge.stop("SIGINT");
    }
    expect(bridge.child.exitCode).toBe(0);
  });

  const startupRefusals: [string, (keyFile: string) => string[], RegExp][] = [
    ["a missing key file", () => ["--key-file", "/nonexistent/bridge.key"], /key file \/nonexistent\/bridge\.key does not exist/],
    ["no key file at all", () => [], /--key-file \(or HEXR_BRIDGE_KEY_FILE\) is required/],
    ["both --valkey and --cluster", (k) => ["--key-file", k, "--valkey", "redis://127.0.0.1:1", "--cluster", "127.0.0.1:2"], /exclude each other/],
    ["a bad --port", (k) => ["--key-file", k, "--port", "70000"], /--port must be an integer from 0 to 65535/],
    ["a bad --cluster entry", (k) => ["--key-file", k, "--cluster", "127.0.0.1"], /--cluster entry "127\.0\.0\.1" is not host:port/],
    ["an unknown flag", (k) => ["--key-file", k, "--verbose"], /Unknown option '--verbose'/],
  ];
  it.each(startupRefusals)("refuses to start with %s, naming the problem", async (_name, args, message) => {
    const { code, stderr } = await failingRun(args(keyFile));
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it("refuses a malformed key file", async () => {
    const bad = path.join(dir, "short.key");
    writeFileSync(bad, randomBytes(16).toString("hex"));
    const { code, stderr } = await failingRun(["--key-file", bad, "--valkey", valkey.url]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes/);
  });
});
