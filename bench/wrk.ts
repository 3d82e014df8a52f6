// Runs wrk, the load generator, pinned to its own core, with the request described as data
// (bench/wrk/driver.lua sends it), and returns what wrk measured.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const DRIVER = path.join(path.dirname(fileURLToPath(import.meta.url)), "wrk", "driver.lua");
let specCount = 0;

/** One HTTP request, as wrk sends it over and over. */
export interface RequestSpec {
  method: "GET" | "POST" | "PUT";
  path: string;
  headers: Record<string, string>;
  body?: string;
  /**
   * Vary "@KEY@" in the path and body per request: prefix + n, n counting up from `start`
   * (count 0: never the same key twice) or cycling through `count` keys from `start`.
   */
  keys?: { prefix: string; start: number; count: number };
}

export interface WrkRun {
  /** Base URL, e.g. http://127.0.0.1:15080 (the path comes from the spec). */
  url: string;
  request: RequestSpec;
  connections: number;
  seconds: number;
  /** CPU the load generator is pinned to. */
  cpu: number;
  /** Where the request spec file is written. */
  workDir: string;
}

export interface WrkResult {
  connections: number;
  seconds: number;
  /** How long wrk actually ran. */
  durationSeconds: number;
  requests: number;
  rps: number;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; mean: number; max: number };
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Requests generated (≥ requests: the ones still in flight at the end are not counted). */
  generated: number;
}

export async function runWrk(options: WrkRun): Promise<WrkResult> {
  const specFile = path.join(options.workDir, `wrk-spec-${++specCount}.lua`);
  writeFileSync(specFile, luaSpec(options.request));
  const args = [
    "-c", String(options.cpu), "wrk",
    "-t1", `-c${options.connections}`, `-d${options.seconds}s`,
    // L3 answers can take long under load; a timeout would drop the slowest samples silently.
    "--timeout", "10s",
    "-s", DRIVER,
    options.url,
  ];
  const { stdout } = await run("taskset", args, {
    env: { ...process.env, BENCH_SPEC: specFile },
    timeout: (options.seconds + 30) * 1000,
  });
  const line = stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const raw = JSON.parse(line.slice("BENCH_JSON ".length));
  return {
    connections: options.connections,
    seconds: options.seconds,
    durationSeconds: raw.duration_us / 1e6,
    requests: raw.requests,
    rps: raw.requests / (raw.duration_us / 1e6),
    latencyUs: raw.latency_us,
    errors: raw.errors,
    generated: raw.generated,
  };
}

/** Errors of any kind: non-2xx/3xx answers, timeouts, broken connections. */
export function errorCount(result: WrkResult): number {
  const e = result.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}

/** The spec as a Lua chunk returning a table; every string goes through luaString. */
function luaSpec(spec: RequestSpec): string {
  const headers = Object.entries(spec.headers).map(([name, value]) => `[${luaString(name)}] = ${luaString(value)}`);
  const lines = [
    "return {",
    `  method = ${luaString(spec.method)},`,
    `  path = ${luaString(spec.path)},`,
    `  headers = { ${headers.join(", ")} },`,
    `  body = ${spec.body === undefined ? "nil" : luaString(spec.body)},`,
  ];
  if (spec.keys) {
    const { prefix, start, count } = spec.keys;
    lines.push(`  keys = { prefix = ${luaString(prefix)}, start = ${Math.trunc(start)}, count = ${Math.trunc(count)} },`);
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

/** A Lua 5.1 string literal: printable ASCII as is, every other byte as a three-digit decimal escape. */
export function luaString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, "utf8")) {
    const printable = byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c;
    out += printable ? String.fromCharCode(byte) : `\\${String(byte).padStart(3, "0")}`;
  }
  return out + '"';
}
