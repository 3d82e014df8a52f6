// Where an Envoy's CPU time goes while it serves a load: `perf record` with call chains on the
// process, then every sample sorted into one of a few buckets. Envoy's release binary carries no
// symbol table and V8 writes no perf map for wasm code, so functions cannot be named; what can be
// told apart is whose code was running:
//   wasm-guest   the filter's own code (V8-compiled wasm: perf sees it as [JIT])
//   wasm-host    Envoy code called from the filter (the proxy-wasm ABI: headers, shared data,
//                local reply, metrics) — a [JIT] frame further up the same call chain
//   kernel       syscalls and the loopback TCP stack
//   envoy        everything else: codec, jwt_authn (signature check), router, access log, allocator
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type Bucket = "wasm-guest" | "wasm-host" | "kernel" | "envoy";

export interface Profile {
  samples: number;
  /** Share of samples per bucket (0 … 1). */
  shares: Record<Bucket, number>;
}

export type ProfileOutcome = { profile: Profile } | { skipped: string };

export async function perfAvailable(): Promise<string | undefined> {
  try {
    await run("perf", ["--version"]);
    return undefined;
  } catch {
    return "perf is not installed (Debian: linux-perf)";
  }
}

/** Samples `pid` for `seconds` while `load` runs; returns the breakdown and what `load` returned. */
export async function profileDuring<T>(
  pid: number,
  seconds: number,
  workDir: string,
  load: () => Promise<T>,
): Promise<{ outcome: ProfileOutcome; result: T }> {
  const unavailable = await perfAvailable();
  if (unavailable) return { outcome: { skipped: unavailable }, result: await load() };
  const dataFile = path.join(workDir, `perf-${pid}.data`);
  // 499 Hz keeps perf's own cost on the profiled core small; a few thousand samples suffice for shares.
  const recorder = spawn("perf", ["record", "-F", "499", "-g", "-p", String(pid), "-o", dataFile, "--", "sleep", String(seconds)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  recorder.stderr.on("data", (chunk) => (stderr += chunk));
  const recorded = new Promise<number>((resolve) => recorder.on("exit", (code) => resolve(code ?? 1)));
  const result = await load();
  const code = await recorded;
  if (code !== 0 || !existsSync(dataFile)) return { outcome: { skipped: `perf record failed: ${stderr.trim().slice(-300)}` }, result };
  const { stdout } = await run("perf", ["script", "-i", dataFile, "-F", "ip,dso"], { maxBuffer: 512 * 1024 * 1024 });
  return { outcome: { profile: classify(stdout) }, result };
}

/** `perf script -F ip,dso` output: one block per sample, leaf frame first, blank line between. */
export function classify(script: string): Profile {
  const counts: Record<Bucket, number> = { "wasm-guest": 0, "wasm-host": 0, kernel: 0, envoy: 0 };
  let samples = 0;
  for (const block of script.split(/\n\s*\n/)) {
    const frames = block
      .split("\n")
      .map((line) => /\(([^)]*)\)\s*$/.exec(line)?.[1])
      .filter((dso): dso is string => dso !== undefined);
    if (frames.length === 0) continue;
    samples++;
    const isJit = (dso: string) => dso.startsWith("[JIT]") || dso.startsWith("/tmp/perf-");
    if (isJit(frames[0])) counts["wasm-guest"]++;
    else if (frames.some(isJit)) counts["wasm-host"]++;
    else if (frames[0].startsWith("[kernel")) counts.kernel++;
    else counts.envoy++;
  }
  const share = (n: number) => (samples > 0 ? n / samples : 0);
  return {
    samples,
    shares: { "wasm-guest": share(counts["wasm-guest"]), "wasm-host": share(counts["wasm-host"]), kernel: share(counts.kernel), envoy: share(counts.envoy) },
  };
}
