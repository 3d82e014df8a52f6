// The real moto server (AWS STS, S3, ... on loopback), with its request recorder so tests can see
// exactly what reached "AWS".
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { tools } from "./tools.ts";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Decoded request body (form-encoded for STS). */
  body: string;
}

export interface MotoServer {
  port: number;
  /** Endpoint for every AWS SDK client: http://127.0.0.1:PORT */
  url: string;
  /** Starts (or restarts, forgetting earlier requests) moto's request recorder. */
  startRecording(): Promise<void>;
  recordedRequests(): Promise<RecordedRequest[]>;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

const BIND_ATTEMPTS = 3;

/** How moto is started everywhere; it writes its recording into `dir`, which keeps it out of the repository. */
export function motoProcessSpec(port: number, dir: string): ProcessSpec {
  return {
    name: "moto",
    command: tools.motoServer(),
    args: ["-H", "127.0.0.1", "-p", String(port)],
    cwd: dir,
    env: { MOTO_RECORDER_FILEPATH: path.join(dir, "recording.jsonl") },
    ready: { url: `http://127.0.0.1:${port}/moto-api/` },
    timeoutMs: 60_000,
  };
}

export async function startMoto(): Promise<MotoServer> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-moto-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      const process = await startProcess(motoProcessSpec(port, dir));
      return handle(process, port, dir);
    } catch (error) {
      if (attempt >= BIND_ATTEMPTS) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

function handle(process: RunningProcess, port: number, dir: string): MotoServer {
  const url = `http://127.0.0.1:${port}`;
  const recorder = async (action: string, method = "POST") => {
    const response = await fetch(`${url}/moto-api/recorder/${action}`, { method });
    if (!response.ok) throw new Error(`moto recorder ${action}: HTTP ${response.status}`);
    return response.text();
  };
  return {
    port,
    url,
    async startRecording() {
      await recorder("reset-recording");
      await recorder("start-recording");
    },
    async recordedRequests() {
      const lines = (await recorder("download-recording", "GET")).split("\n").filter((line) => line.trim());
      return lines.map((line) => {
        const entry = JSON.parse(line) as RecordedRequest & { body_encoded?: boolean };
        const body = entry.body_encoded ? Buffer.from(entry.body, "base64").toString("utf8") : entry.body ?? "";
        return { method: entry.method, url: entry.url, headers: entry.headers, body };
      });
    },
    pause: () => process.child.kill("SIGSTOP"),
    resume: () => process.child.kill("SIGCONT"),
    async stop() {
      process.child.kill("SIGCONT");
      await process.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
