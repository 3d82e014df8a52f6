// The real fake-gcs-server (github.com/fsouza/fake-gcs-server, Google Cloud Storage's JSON and
// upload APIs on loopback), installed by scripts/bootstrap.sh into .tools/bin. Plain HTTP and an
// in-memory backend: nothing is written to disk and nothing outlives the process.
//
// It checks no credential at all: a test that needs to know a token was used must look where the
// token came from (the sidecar's access log), not here. Its access log names method, path and
// status only, never a header.
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { projectRoot } from "./tools.ts";

export interface FakeGcsServer {
  port: number;
  /**
   * http://127.0.0.1:PORT: the API endpoint a client is pointed at (google-cloud-storage's
   * `client_options={"api_endpoint": url}`); the JSON API is under /storage/v1, uploads under
   * /upload/storage/v1.
   */
  url: string;
  /** Everything it wrote so far (its access log included). */
  output(): string;
  stop(): Promise<void>;
}

const BIND_ATTEMPTS = 3;

/** .tools/bin/fake-gcs-server (scripts/bootstrap.sh), else one on PATH. */
export function fakeGcsServerBinary(): string {
  const local = path.join(projectRoot, ".tools", "bin", "fake-gcs-server");
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "fake-gcs-server");
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error("fake-gcs-server not found: run `npm run setup` (scripts/bootstrap.sh)");
}

/** How fake-gcs-server is started everywhere: loopback only, plain HTTP, memory backend. */
export function fakeGcsProcessSpec(port: number, dir: string): ProcessSpec {
  const url = `http://127.0.0.1:${port}`;
  return {
    name: "fake-gcs-server",
    command: fakeGcsServerBinary(),
    args: [
      "-scheme", "http",
      "-host", "127.0.0.1",
      "-port", String(port),
      "-backend", "memory",
      // Resumable uploads answer with a Location header built from these: keep clients on loopback.
      "-external-url", url,
      "-public-host", `127.0.0.1:${port}`,
    ],
    cwd: dir,
    ready: { url: `${url}/_internal/healthcheck` },
    timeoutMs: 20_000,
  };
}

export async function startFakeGcs(): Promise<FakeGcsServer> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-fake-gcs-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return handle(await startProcess(fakeGcsProcessSpec(port, dir)), port, dir);
    } catch (error) {
      if (attempt >= BIND_ATTEMPTS) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

function handle(process: RunningProcess, port: number, dir: string): FakeGcsServer {
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => process.output(),
    async stop() {
      await process.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
