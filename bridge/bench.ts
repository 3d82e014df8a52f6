// Latency of an L2 hit through the bridge versus a direct Valkey GET, on loopback, one keep-alive
// connection, sequential requests (what one Envoy worker's callout sees: TLS set up once, then
// reused). Run: npx tsx bridge/bench.ts [requests]
import { Agent, request } from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "iovalkey";
import { pino } from "pino";
import { DEV_AUDIENCE, ensureDevIdentity, issueServiceSvid, issueX509Svid } from "../support/dev-identity.ts";
import { projectRoot } from "../support/tools.ts";
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
const identityDir = path.join(projectRoot, ".run", "bridge-test-identity");
const identity = await ensureDevIdentity(identityDir);
const bridgeSvid = await issueServiceSvid("bridge", identityDir);
const caller = await issueX509Svid("spiffe://hexr.local/sidecar/acme/bench", identityDir);
const valkey = await startValkey();
const bridge = await startBridge({
  valkey: valkey.url,
  valkeyPasswordFile: valkey.users.bridge.passwordFile,
  keyFile: ensureDevKeyFile(path.join(dir, "bridge.key")),
  tls: { cert: bridgeSvid.cert, key: bridgeSvid.key, trustBundle: identity.ca },
  access: {
    callers: [{ spiffe_id: "spiffe://hexr.local/sidecar/acme/*", tenants: ["acme"], trust_domains: ["hexr.test"] }],
    admins: [],
    jwt: { jwks_file: identity.jwks, audience: [DEV_AUDIENCE], clock_tolerance_seconds: 5 },
  },
  logger: pino({ level: "silent" }),
});
const direct = new Redis(valkey.adminUrl);
const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: readFileSync(caller.cert), key: readFileSync(caller.key), ca: readFileSync(identity.ca) });
const call = (method: string, requestPath: string, body?: string) =>
  new Promise<number>((resolve, reject) => {
    request({ host: "127.0.0.1", port: bridge.port, path: requestPath, method, agent }, (res) => {
      res.resume().on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end(body);
  });
try {
  await direct.set(`direct:${KEY}`, VALUE);
  const put = await call("PUT", `/v1/cred/${encodeURIComponent(KEY)}?ttl_ms=600000`, VALUE);
  if (put !== 204) throw new Error(`PUT answered ${put}`);

  const credPath = `/v1/cred/${encodeURIComponent(KEY)}`;
  const bridgeGet = async () => {
    const status = await call("GET", credPath);
    if (status !== 200) throw new Error(`GET answered ${status}`);
  };

  console.log(`${REQUESTS} sequential GETs of a ${VALUE.length}-byte value after ${WARMUP} warm-up`);
  const valkeyMedian = await measure("valkey GET (iovalkey)", async () => void (await direct.getBuffer(`direct:${KEY}`)));
  const bridgeMedian = await measure("bridge GET (mTLS, decrypt)", bridgeGet);
  console.log(`added by the bridge at p50: ${(bridgeMedian - valkeyMedian).toFixed(3)} ms`);
} finally {
  agent.destroy();
  direct.disconnect();
  await bridge.close();
  await valkey.stop();
  rmSync(dir, { recursive: true, force: true });
}
