// The AES-256 key comes from a file: 32 raw bytes, 64 hex characters, or base64 of 32 bytes.
// A missing or malformed file stops the bridge at startup, never at the first request.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { KEY_BYTES } from "./cipher.ts";

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;
const PRINTABLE_TEXT = /^[\x20-\x7e\t\r\n]*$/;

export function loadKeyFile(file: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read";
    throw new Error(`key file ${file} ${reason}; create one with 32 random bytes (e.g. \`openssl rand -hex 32 > ${file}\`)`);
  }
  const key = decodeKey(content);
  if (!key) {
    throw new Error(`key file ${file} must hold ${KEY_BYTES} raw bytes, 64 hex characters or base64 of ${KEY_BYTES} bytes`);
  }
  return key;
}

function decodeKey(content: Buffer): Buffer | undefined {
  // 32 random bytes are printable text with probability ~1e-14, so a 32-byte text file is a mistake
  // (a truncated hex key, a passphrase), not a raw key.
  if (content.length === KEY_BYTES) return PRINTABLE_TEXT.test(content.toString("latin1")) ? undefined : content;
  const text = content.toString("latin1").trim(); // text forms usually end with a newline
  if (HEX_KEY.test(text)) return Buffer.from(text, "hex");
  if (BASE64_KEY.test(text)) return Buffer.from(text, "base64");
  return undefined;
}

/**
 * Creates a key file with a fresh random key (hex, mode 0600) unless one exists, and returns its path.
 * For local development only: pods that share a Valkey must share one key, so production keys are provisioned.
 */
export function ensureDevKeyFile(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    writeFileSync(file, randomBytes(KEY_BYTES).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return file;
}
