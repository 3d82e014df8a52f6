import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureDevKeyFile, loadKeyFile } from "../keyfile.ts";

describe("key file", () => {
  let dir: string;
  const file = (name: string, content: string | Buffer) => {
    const full = path.join(dir, name);
    writeFileSync(full, content);
    return full;
  };
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), "hexr-keyfile-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const secret = randomBytes(32);

  it("reads 32 raw bytes, 64 hex characters and base64 of 32 bytes, with or without a trailing newline", () => {
    expect(loadKeyFile(file("raw", secret)).equals(secret)).toBe(true);
    expect(loadKeyFile(file("hex", secret.toString("hex"))).equals(secret)).toBe(true);
    expect(loadKeyFile(file("hex-nl", secret.toString("hex").toUpperCase() + "\n")).equals(secret)).toBe(true);
    expect(loadKeyFile(file("b64", secret.toString("base64") + "\n")).equals(secret)).toBe(true);
  });

  it("fails with a clear message when the file is missing", () => {
    expect(() => loadKeyFile(path.join(dir, "absent.key"))).toThrow(/key file .*absent\.key does not exist/);
  });

  it.each([
    ["too short raw", randomBytes(16)],
    ["32 characters of text (16 bytes as hex)", randomBytes(16).toString("hex")],
    ["a 32-character passphrase", "correct horse battery staple!!!\n"],
    ["too long raw", randomBytes(33)],
    ["63 hex characters", secret.toString("hex").slice(1)],
    ["hex with a non-hex character", "g" + secret.toString("hex").slice(1)],
    ["base64 of 16 bytes", randomBytes(16).toString("base64")],
    ["empty", ""],
  ])("rejects %s with a clear message", (_name, content) => {
    expect(() => loadKeyFile(file("bad", content))).toThrow(
      /must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes/,
    );
  });

  it("creates a dev key file (mode 0600, loadable) and never overwrites an existing one", () => {
    const target = path.join(dir, ".dev", "bridge.key");
    expect(ensureDevKeyFile(target)).toBe(target);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    const first = readFileSync(target, "utf8");
    expect(loadKeyFile(target)).toHaveLength(32);
    ensureDevKeyFile(target);
    expect(readFileSync(target, "utf8")).toBe(first);
  });
});
