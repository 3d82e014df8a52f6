// What an Envoy process holds in memory, from the outside:
//  - resident memory (VmRSS, and its anonymous part) from /proc/PID/status;
//  - what Envoy's allocator has handed out (admin /memory over its Unix socket, read on the spot; the server.memory_*
//    gauges lag by up to a stats flush): L1 lives here, because proxy shared data is a map in the
//    host, outside any wasm VM;
//  - each wasm VM's linear memory, found in /proc/PID/smaps. V8 reserves a fixed 8 GiB region
//    per wasm memory and makes its first memory.size() bytes readable/writable: the heap is the
//    rw-p mapping that, together with the inaccessible rest right after it, makes up exactly
//    8 GiB. Neither Envoy's stats nor the proxy-wasm ABI report a VM's heap, so this is the
//    only view of it from outside the VM.
import { readFileSync } from "node:fs";
import { adminRequest } from "../stack/envoy.ts";

const V8_WASM_RESERVATION = 8 * 1024 ** 3;

export interface WasmHeap {
  /** memory.size() of the VM, in bytes (what the guest has grown its memory to). */
  sizeBytes: number;
  /** The part of it that is resident (pages the guest has touched). */
  residentBytes: number;
}

export interface MemorySample {
  rssBytes: number;
  rssAnonBytes: number;
  /** Envoy's allocator, bytes in use (admin /memory "allocated"). */
  allocatedBytes: number;
  /** Envoy's allocator, heap size including free lists (admin /memory "heap_size"). */
  heapBytes: number;
  /** One per wasm VM Envoy runs (the main thread's and one per worker), or empty if not found. */
  wasmHeaps: WasmHeap[];
}

export async function sampleMemory(pid: number, adminSocket: string): Promise<MemorySample> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  const memory = await adminRequest(adminSocket, "/memory");
  if (memory.status !== 200) throw new Error(`admin /memory answered ${memory.status}`);
  const allocator = JSON.parse(memory.text) as Record<string, string>;
  return {
    rssBytes: kib("VmRSS"),
    rssAnonBytes: kib("RssAnon"),
    allocatedBytes: Number(allocator.allocated),
    heapBytes: Number(allocator.heap_size),
    wasmHeaps: wasmHeaps(readFileSync(`/proc/${pid}/smaps`, "utf8")),
  };
}

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  anonymous: boolean;
  rssBytes: number;
}

export function wasmHeaps(smaps: string): WasmHeap[] {
  const mappings = parseSmaps(smaps);
  const heaps: WasmHeap[] = [];
  for (let i = 0; i + 1 < mappings.length; i++) {
    const heap = mappings[i];
    const guard = mappings[i + 1];
    const isPair = heap.perms === "rw-p" && guard.perms === "---p" && heap.anonymous && guard.anonymous && heap.end === guard.start;
    if (isPair && Number(guard.end - heap.start) === V8_WASM_RESERVATION) {
      heaps.push({ sizeBytes: Number(heap.end - heap.start), residentBytes: heap.rssBytes });
    }
  }
  return heaps;
}

function parseSmaps(smaps: string): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of smaps.split("\n")) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      mappings.push({
        start: BigInt(`0x${header[1]}`),
        end: BigInt(`0x${header[2]}`),
        perms: header[3],
        anonymous: header[4] === "0" && header[5] === "",
        rssBytes: 0,
      });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && mappings.length > 0) mappings[mappings.length - 1].rssBytes = Number(rss[1]) * 1024;
  }
  return mappings;
}

/** The sum over every VM, for the report. */
export function totalWasmHeap(sample: MemorySample): WasmHeap {
  return sample.wasmHeaps.reduce(
    (sum, heap) => ({ sizeBytes: sum.sizeBytes + heap.sizeBytes, residentBytes: sum.residentBytes + heap.residentBytes }),
    { sizeBytes: 0, residentBytes: 0 },
  );
}
