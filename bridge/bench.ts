// Latency of an L2 hit through the bridge versus a direct Valkey GET, on loopback, one keep-alive
// connection, sequential requests (what one Envoy worker's callout sees). Run: npx tsx bridge/bench.ts [requests]
import { Agent, request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "iovalkey";
import { pino } from "pino";
import { startValkey } from "../support/valkey.ts";
import { ensureDevKeyFile, startBridge } from "./index.ts";

const REQUESTS = Number(process.argv[2] ?? 5000);
const WARMUP = 500;
const KEY = "cred:spiffe://hexr.test/agent/acme/bench/worker:aws_s3:us-east-1";
const VALUE = `1900000000\n${JSON.stringify({ credentials: { SecretAccessKey: "x".repeat(40), SessionToken: "t".repeat(600) } })}`;

function percentile(sorted: number[], p: number): string {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(3);
}

async function measure(label: string, once: () => Promise<void>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    await once();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  console.log(`${label.padEnd(26)} p50 ${percentile(samples, 50)} ms  p90 ${percentile(samples, 90)} ms  p99 ${percentile(samples, 99)} ms`);
  return samples[Math.floor(samples.length / 2)];
}

const dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-bench-"));
const valkey = await startValkey();
const bridge = await startBridge({ valkey: valkey.url, keyFile: ensureDevKeyFile(path.join(dir, "bridge.key")), logger: pino({ level: "silent" }) });
const direct = new Redis(valkey.url);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
try {
  await direct.set(`direct:${KEY}`, VALUE);
  const put = await fetch(`${bridge.url}/v1/cred/${encodeURIComponent(KEY)}?ttl_ms=600000`, { method: "PUT", body: VALUE });
  if (put.status !== 204) throw new Error(`PUT answered ${put.status}`);

  const credPath = `/v1/cred/${encodeURIComponent(KEY)}`;
  const bridgeGet = () =>
    new Promise<void>((resolve, reject) => {
      request({ host: "127.0.0.1", port: bridge.port, path: credPath, agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET answered ${res.statusCode}`));
        res.resume().on("end", resolve);
      })
        .on("error", reject)
        .end();
    });

  console.log(`${REQUESTS} sequential GETs of a ${VALUE.length}-byte value after ${WARMUP} warm-up`);
  const valkeyMedian = await measure("valkey GET (iovalkey)", async () => void (await direct.getBuffer(`direct:${KEY}`)));
  const bridgeMedian = await measure("bridge GET (HTTP, decrypt)", bridgeGet);
  console.log(`added by the bridge at p50: ${(bridgeMedian - valkeyMedian).toFixed(3)} ms`);
} finally {
  agent.destroy();
  direct.disconnect();
  await bridge.close();
  await valkey.stop();
  rmSync(dir, { recursive: true, force: true });
}
