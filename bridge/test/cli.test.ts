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
import { bridgeClient, credKey, FIXTURE_CALLER, fixtureAccess, testIdentity, type ClientTls } from "./helpers.ts";

const TSX = path.join(projectRoot, "node_modules", ".bin", "tsx");
const MAIN = path.join(projectRoot, "bridge", "main.ts");
const LISTENING = /listening on (https:\/\/127\.0\.0\.1:(\d+))/;

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
  let caller: ClientTls;
  let ca: string;
  /** The flags every run needs besides --key-file and the Valkey target, by name. */
  let flags: Record<string, string>;
  const args = (given: Record<string, string>) => Object.entries(given).flatMap(([flag, value]) => [flag, value]);

  beforeAll(async () => {
    valkey = await startValkey();
    dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-cli-"));
    keyFile = path.join(dir, "bridge.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"));
    const id = await testIdentity();
    caller = await id.client(FIXTURE_CALLER);
    ca = id.paths.ca;
    const accessFile = path.join(dir, "access.json");
    writeFileSync(accessFile, JSON.stringify(fixtureAccess(id)));
    flags = {
      "--tls-cert": id.bridge.cert,
      "--tls-key": id.bridge.key,
      "--trust-bundle": id.paths.ca,
      "--access-file": accessFile,
      "--valkey-password-file": valkey.users.bridge.passwordFile,
    };
  });
  afterAll(async () => {
    await valkey?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("prints one listening line, serves over TLS, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const bridge = await startProcess({
      name: "bridge-cli",
      command: TSX,
      args: [MAIN, "--port", String(port), "--valkey", valkey.url, "--key-file", keyFile, ...args(flags)],
      ready: { logLine: LISTENING },
    });
    try {
      const [line, url, printedPort] = LISTENING.exec(bridge.output())!;
      expect(line).toBe(`listening on https://127.0.0.1:${port}`);
      expect(Number(printedPort)).toBe(port);
      const api = bridgeClient(url, caller);
      try {
        expect((await api.health()).status).toBe(200);
        expect((await api.put(credKey("cli", "a1"), "CLIVALUE")).status).toBe(204);
        expect((await api.get(credKey("cli", "a1"))).body.toString()).toBe("CLIVALUE");
      } finally {
        api.close();
      }
      const anonymous = bridgeClient(url, { ca });
      try {
        expect((await anonymous.get(credKey("cli", "a1"))).status).toBe(401);
      } finally {
        anonymous.close();
      }
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
      env: {
        HEXR_BRIDGE_PORT: "0",
        HEXR_BRIDGE_VALKEY: valkey.url,
        HEXR_BRIDGE_KEY_FILE: devKey,
        HEXR_BRIDGE_TLS_CERT: flags["--tls-cert"],
        HEXR_BRIDGE_TLS_KEY: flags["--tls-key"],
        HEXR_BRIDGE_TRUST_BUNDLE: flags["--trust-bundle"],
        HEXR_BRIDGE_ACCESS_FILE: flags["--access-file"],
        HEXR_BRIDGE_VALKEY_USER: valkey.users.bridge.username,
        HEXR_BRIDGE_VALKEY_PASSWORD_FILE: flags["--valkey-password-file"],
      },
      ready: { logLine: LISTENING },
    });
    try {
      expect(existsSync(devKey)).toBe(true);
      const [, url] = LISTENING.exec(bridge.output())!;
      const api = bridgeClient(url, caller);
      expect((await api.health()).status).toBe(200);
      expect((await api.put(credKey("cli", "a2"), "v")).status).toBe(204);
      api.close();
    } finally {
      await bridge.stop("SIGINT");
    }
    expect(bridge.child.exitCode).toBe(0);
  });

  /** Every required flag but `flag`. */
  const without = (flag: string) => (k: string) => ["--key-file", k, ...args(Object.fromEntries(Object.entries(flags).filter(([f]) => f !== flag)))];
  const startupRefusals: [string, (keyFile: string) => string[], RegExp][] = [
    ["a missing key file", () => ["--key-file", "/nonexistent/bridge.key", ...args(flags)], /key file \/nonexistent\/bridge\.key does not exist/],
    ["no key file at all", () => [], /--key-file \(or HEXR_BRIDGE_KEY_FILE\) is required/],
    ["both --valkey and --cluster", (k) => ["--key-file", k, "--valkey", "redis://127.0.0.1:1", "--cluster", "127.0.0.1:2"], /exclude each other/],
    ["a bad --port", (k) => ["--key-file", k, "--port", "70000"], /--port must be an integer from 0 to 65535/],
    ["a bad --cluster entry", (k) => ["--key-file", k, ...args(flags), "--cluster", "127.0.0.1"], /--cluster entry "127\.0\.0\.1" is not host:port/],
    ["an unknown flag", (k) => ["--key-file", k, "--verbose"], /Unknown option '--verbose'/],
    ["no certificate", without("--tls-cert"), /--tls-cert \(or HEXR_BRIDGE_TLS_CERT\) is required/],
    ["no trust bundle", without("--trust-bundle"), /--trust-bundle \(or HEXR_BRIDGE_TRUST_BUNDLE\) is required/],
    ["no access file", without("--access-file"), /--access-file \(or HEXR_BRIDGE_ACCESS_FILE\) is required/],
    ["no Valkey password file", without("--valkey-password-file"), /--valkey-password-file \(or HEXR_BRIDGE_VALKEY_PASSWORD_FILE\) is required/],
    ["credentials in the Valkey URL", (k) => ["--key-file", k, ...args(flags), "--valkey", "redis://hexr-bridge:secret@127.0.0.1:1"], /must not hold credentials/],
    ["a missing certificate file", (k) => ["--key-file", k, ...args({ ...flags, "--tls-cert": "/nonexistent/cert.pem" })], /TLS certificate file \/nonexistent\/cert\.pem does not exist/],
    ["a certificate that does not match its key", (k) => ["--key-file", k, ...args({ ...flags, "--tls-cert": caller.cert! })], /do not form a usable TLS context/],
  ];
  it.each(startupRefusals)("refuses to start with %s, naming the problem", async (_name, args, message) => {
    const { code, stderr } = await failingRun(args(keyFile));
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it("refuses a malformed key file", async () => {
    const bad = path.join(dir, "short.key");
    writeFileSync(bad, randomBytes(16).toString("hex"));
    const { code, stderr } = await failingRun(["--key-file", bad, "--valkey", valkey.url, ...args(flags)]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes/);
  });

  it.each([
    ["not JSON", "{", /is not readable JSON/],
    ["no callers", "{\"callers\": []}", /callers must name at least one caller/],
    ["a bad caller pattern", JSON.stringify({ callers: [{ spiffe_id: "spiffe://hexr.local/sidecar/*x", tenants: ["a"] }] }), /callers\[0\]\.spiffe_id must be a SPIFFE ID/],
    ["a bad tenant", JSON.stringify({ callers: [{ spiffe_id: FIXTURE_CALLER, tenants: ["a/b"] }] }), /callers\[0\]\.tenants must be a non-empty list/],
    ["admins without jwt", JSON.stringify({ callers: [{ spiffe_id: FIXTURE_CALLER, tenants: ["a"] }], admins: ["spiffe://hexr.local/agent/a/b/c"] }), /jwt is required when admins are configured/],
    ["an unknown field", JSON.stringify({ callers: [{ spiffe_id: FIXTURE_CALLER, tenants: ["a"] }], admin: [] }), /has unknown fields: admin/],
  ])("refuses an access file with %s", async (_name, content, message) => {
    const file = path.join(dir, `access-${_name.replace(/\W+/g, "-")}.json`);
    writeFileSync(file, content);
    const { code, stderr } = await failingRun(["--key-file", keyFile, "--valkey", valkey.url, ...args({ ...flags, "--access-file": file })]);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });
});
