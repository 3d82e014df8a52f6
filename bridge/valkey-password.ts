// Valkey's password comes from a file (a Kubernetes Secret, a file the stack writes with mode 0600),
// never from a flag, an environment variable or the URL: those show up in `ps` and
// /proc/{pid}/environ, which any process of the pod's user can read.
import { readFileSync, statSync } from "node:fs";
import type { Logger } from "pino";

export function loadValkeyPassword(file: string, log: Logger): string {
  let password: string;
  try {
    password = readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read";
    throw new Error(`Valkey password file ${file} ${reason}`);
  }
  if (password.length === 0 || /[\r\n]/.test(password)) throw new Error(`Valkey password file ${file} must hold one non-empty line`);
  if ((statSync(file).mode & 0o004) !== 0) log.warn({ file }, "the Valkey password file is readable by every user; make it 0600 (or 0640 with a group)");
  return password;
}

/** Credentials belong in the password file, not in the URL (where `ps` shows them). */
export function refuseUrlCredentials(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("the Valkey URL is not a URL (redis://HOST:PORT or rediss://HOST:PORT)");
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new Error("the Valkey URL must start with redis:// or rediss://");
  if (parsed.username || parsed.password) {
    throw new Error("the Valkey URL must not hold credentials: use --valkey-user and --valkey-password-file");
  }
}
