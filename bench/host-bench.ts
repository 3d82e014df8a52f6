// The host-test figure of the targets: `host-test/bench.ts` (what `npm run bench:host` runs) times
// whole L1-hit lifecycles of the release module in the TypeScript host, and the same lifecycle of
// a WAT guest that makes the same hostcalls and nothing else. The guest's own share is the
// difference of the two medians.
//
// host-test/bench.ts prints text only; the two lines read here are
//   L1-hit lifecycle    median   11.26 µs  p99 …
//     of which the host  median    5.20 µs  p99 …
import { execFile } from "node:child_process";
import path from "node:path";
import { projectRoot } from "../support/tools.ts";

export const HOST_BENCH_SCRIPT = path.join("host-test", "bench.ts");

export type HostBench =
  | {
    /** Median of the L1-hit lifecycle with the release module, µs. */
    l1MedianUs: number;
    /** Median of the same lifecycle with a guest that only makes the hostcalls, µs (absent: not printed). */
    hostOnlyMedianUs?: number;
    /** l1MedianUs − hostOnlyMedianUs: the guest's own share, µs. */
    guestMedianUs?: number;
    seconds: number;
    output: string;
  }
  | { error: string; output?: string };

/** Runs host-test/bench.ts once (about 15 s) and reads its medians; never throws. */
export function runHostBench(): Promise<HostBench> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", HOST_BENCH_SCRIPT],
      { cwd: projectRoot, encoding: "utf8", timeout: 300_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr ? `\n${stderr}` : ""}`.trim();
        if (error) {
          resolve({ error: `${HOST_BENCH_SCRIPT} failed: ${error.message.split("\n")[0]}`, output });
          return;
        }
        resolve(parseHostBench(stdout.trim(), (Date.now() - started) / 1000));
      },
    );
  });
}

/** A duration as host-test/bench.ts prints it ("11.26 µs"; also "μs", "us", "ns", "ms"), in µs. */
function microseconds(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case "ns": return n / 1000;
    case "ms": return n * 1000;
    default: return n;
  }
}

const DURATION = String.raw`([0-9]+(?:\.[0-9]+)?)\s*(µs|\u03bcs|us|ns|ms)`;
const L1_LINE = new RegExp(String.raw`^\s*L1-hit lifecycle\b.*?\bmedian\s+${DURATION}`, "im");
const HOST_LINE = new RegExp(String.raw`^\s*of which the host\b.*?\bmedian\s+${DURATION}`, "im");

export function parseHostBench(output: string, seconds: number): HostBench {
  const l1 = L1_LINE.exec(output);
  if (!l1) return { error: `no "L1-hit lifecycle … median N µs" line in the output of ${HOST_BENCH_SCRIPT}`, output };
  const l1MedianUs = microseconds(l1[1], l1[2]);
  const host = HOST_LINE.exec(output);
  const hostOnlyMedianUs = host ? microseconds(host[1], host[2]) : undefined;
  return {
    l1MedianUs,
    hostOnlyMedianUs,
    guestMedianUs: hostOnlyMedianUs === undefined ? undefined : l1MedianUs - hostOnlyMedianUs,
    seconds,
    output,
  };
}
