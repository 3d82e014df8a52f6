// A service's X.509-SVID (certificate and key) and the trust bundle, read from PEM files and read
// again when they change: SPIRE rotates SVIDs long before they expire (hourly by default), and the
// service keeps serving across a rotation without a restart (the bridge, the injector).
import { readFileSync, statSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { Logger } from "pino";

export interface TlsFiles {
  /** The bridge's certificate chain (PEM): what sidecars check against the bridge's SPIFFE ID. */
  cert: string;
  key: string;
  /** CA certificates (PEM) that callers' certificates must chain to. */
  trustBundle: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** The files' contents, checked by building a TLS context from them: a key that does not match fails here, at startup. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const material = { cert: read(files.cert, "certificate"), key: read(files.key, "key"), ca: read(files.trustBundle, "trust bundle") };
  try {
    createSecureContext(material);
  } catch (error) {
    throw new Error(`TLS files ${files.cert}, ${files.key}, ${files.trustBundle} do not form a usable TLS context: ${(error as Error).message}`);
  }
  return material;
}

/**
 * Calls `onChange` with fresh material whenever one of the files' modification time changes
 * (checked every `intervalMs`). A half-written or broken set is logged and skipped: the bridge keeps
 * the material it has until a good set appears. Returns a function that stops watching.
 */
export function watchTlsFiles(
  files: TlsFiles,
  onChange: (material: TlsMaterial) => void,
  log: Logger,
  intervalMs = 30_000,
): () => void {
  const stamp = () => [files.cert, files.key, files.trustBundle].map(modifiedAt).join(",");
  let last = stamp();
  const timer = setInterval(() => {
    const now = stamp();
    if (now === last) return;
    try {
      onChange(readTlsMaterial(files));
      last = now;
      log.info("TLS certificate or trust bundle reloaded");
    } catch (error) {
      log.error({ reason: (error as Error).message }, "TLS files changed but cannot be used; keeping the previous ones");
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read";
    throw new Error(`TLS ${what} file ${file} ${reason}`);
  }
}

function modifiedAt(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}
