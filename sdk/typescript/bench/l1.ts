// npm run bench:sdk: the SDK's in-process L1 hit beside the sidecar's L1, L2 and L3 exchanges,
// measured in the same run against a real local stack it starts (Envoy + filter, bridge + Valkey,
// injector, OPA, moto). Every figure is a full HexrClient.resolve() (JWT-SVID file check, span
// and metrics calls through @opentelemetry/api without an SDK registered, i.e. no-ops).
//   in-process L1   resolve() of a cached key
//   sidecar L1      resolve() with the in-process L1 emptied first: POST /exchange answered by Envoy's L1
//   sidecar L2      first request for a key on a second sidecar (pod-b) after pod-a filled L2
//   sidecar L3      first request for a key anywhere: injector, OPA, moto STS
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { mintJwtSvid } from "../../../support/dev-identity.ts";
import { startStack } from "../../../stack/index.ts";
import { CONTRACT_REGIONS_AWS, HexrClient, FileJwtSvidSource } from "./sdk.ts";

const SPIFFE_ID = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";

function stats(samplesNs: number[]) {
  const sorted = [...samplesNs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000;
  return { n: sorted.length, p50_us: at(0.5), p90_us: at(0.9), p99_us: at(0.99) };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start);
}

const dir = mkdtempSync(path.join(tmpdir(), "hexr-sdk-bench-"));
const stack = await startStack();
try {
  const tokenFile = path.join(dir, "svid.jwt");
  writeFileSync(tokenFile, await mintJwtSvid(SPIFFE_ID), { mode: 0o600 });
  const podB = await stack.addSidecar("pod-b");
  const a = new HexrClient({ sidecarUrl: stack.envoy.agentUrl, identity: new FileJwtSvidSource(tokenFile) });
  const b = new HexrClient({ sidecarUrl: podB.agentUrl, identity: new FileJwtSvidSource(tokenFile) });

  // L3 on pod-a (fills pod-a's L1 and L2), then L2 on pod-b, one region each.
  const regions = CONTRACT_REGIONS_AWS.slice(0, 30);
  const l3: number[] = [];
  const l2: number[] = [];
  for (const region of regions) {
    a.clear();
    l3.push(await time(() => a.resolve("aws_s3", region)));
  }
  await new Promise((r) => setTimeout(r, 300)); // L2 write-through lands after the answer
  const tiers: Record<string, number> = {};
  for (const region of regions) {
    b.clear();
    let tier = "";
    l2.push(await time(async () => { tier = (await b.resolve("aws_s3", region)).cacheTier; }));
    tiers[tier] = (tiers[tier] ?? 0) + 1;
  }

  // Sidecar L1: the same key, in-process L1 emptied before each call.
  const sidecarL1: number[] = [];
  for (let i = 0; i < 100; i++) { a.clear(); await a.resolve("aws_s3"); } // warm-up (connection, JIT)
  for (let i = 0; i < 1000; i++) {
    a.clear();
    sidecarL1.push(await time(() => a.resolve("aws_s3")));
  }

  // In-process L1.
  const processL1: number[] = [];
  await a.resolve("aws_s3");
  for (let i = 0; i < 10_000; i++) await a.resolve("aws_s3"); // warm-up
  for (let i = 0; i < 100_000; i++) processL1.push(await time(() => a.resolve("aws_s3")));

  const rows = {
    "in-process L1 hit": stats(processL1),
    "sidecar L1 (POST /exchange)": stats(sidecarL1),
    "sidecar L2 (pod-b, after pod-a)": stats(l2),
    "sidecar L3 (injector, OPA, STS)": stats(l3),
  };
  console.log(`\n@hexr/sdk credential resolution, ${new Date().toISOString()}, node ${process.version}`);
  console.log("| tier | n | p50 µs | p90 µs | p99 µs |\n|---|---|---|---|---|");
  for (const [name, s] of Object.entries(rows)) console.log(`| ${name} | ${s.n} | ${s.p50_us.toFixed(1)} | ${s.p90_us.toFixed(1)} | ${s.p99_us.toFixed(1)} |`);
  console.log(`pod-b answered the L2 round with x-hexr-cache: ${JSON.stringify(tiers)}`);
  console.log(`in-process L1 hit vs sidecar L1: ${(rows["sidecar L1 (POST /exchange)"].p50_us / rows["in-process L1 hit"].p50_us).toFixed(0)}x faster (p50)`);
  a.close();
  b.close();
} finally {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}
