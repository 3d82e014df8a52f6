// How the two cores are shared, and how busy they were: pinning processes with taskset, finding
// the process of a sidecar the stack started, CPU time per process and for the whole machine.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";

/**
 * The split used throughout: the Envoy under test (every thread of it) on one core, the load
 * generator on the other. Everything else (the injector, OPA, moto, the bridge, Valkey, and
 * whatever else runs on this machine) is left to the scheduler.
 */
export const CORES = { envoy: 0, loadGenerator: 1 } as const;

export function requireTwoCores(): void {
  if (availableParallelism() < 2) throw new Error("the benchmark pins Envoy and wrk to separate cores: it needs 2");
}

/** Pins every thread of `pid` (threads started later inherit it from their parent thread). */
export function pinProcess(pid: number, cpu: number): void {
  execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", String(cpu), String(pid)], { stdio: "ignore" });
}

/** The process whose command line contains `needle` (a sidecar's unique config path). */
export function findProcess(needle: string): number {
  const matches: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) matches.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  if (matches.length !== 1) throw new Error(`expected one process running ${needle}, found ${matches.length}`);
  return matches[0];
}

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** User + system CPU seconds `pid` has used so far, over all its threads. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may itself contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export interface MachineCpu {
  busy: number;
  total: number;
}

/** Busy and total CPU time of the whole machine, in ticks, from /proc/stat. */
export function machineCpu(): MachineCpu {
  const values = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = values;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/** Share of both cores that was busy between two readings (1 = both cores fully busy). */
export function busyShare(before: MachineCpu, after: MachineCpu): number {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}

export function loadAverage(): [number, number, number] {
  const [one, five, fifteen] = loadavg();
  return [one, five, fifteen];
}
