// The wasi_snapshot_preview1 functions Envoy provides to Wasm modules, with proxy-wasm-cpp-host's
// behaviour: stdout/stderr become log lines (info/error, one trailing newline dropped), clocks are
// the virtual clock, there is no file system, and proc_exit ends the VM (see errors.ts).

import { randomFillSync } from "node:crypto";
import { LogLevel, WasiClock, WasiErrno } from "./abi.ts";
import { GuestExit } from "./errors.ts";
import type { Vm } from "./vm.ts";

const STDOUT = 1;
const STDERR = 2;
const MAX_RANDOM_BYTES = 64 * 1024;
/** __WASI_RIGHTS_FD_WRITE, the only right cpp-host reports for stdout/stderr. */
const RIGHTS_FD_WRITE = 64n;

export function wasiImports(vm: Vm): WebAssembly.ModuleImports {
  const memory = () => vm.memory;
  const u32 = (value: number) => value >>> 0;
  const isStdio = (fd: number) => fd === STDOUT || fd === STDERR;

  return {
    fd_write(fd: number, iovs: number, iovsLength: number, writtenPtr: number): WasiErrno {
      if (!isStdio(fd)) return WasiErrno.Badf;
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < u32(iovsLength); i++) {
        const base = memory().readU32(u32(iovs) + i * 8);
        const length = memory().readU32(u32(iovs) + i * 8 + 4);
        const chunk = base === undefined || length === undefined ? undefined : memory().copy(base, length);
        if (chunk === undefined) return WasiErrno.Fault;
        chunks.push(chunk);
      }
      const bytes = Buffer.concat(chunks);
      const written = bytes.byteLength;
      if (written > 0) {
        const text = bytes.toString("utf8");
        const line = text.endsWith("\n") ? text.slice(0, -1) : text;
        vm.log(fd === STDOUT ? LogLevel.Info : LogLevel.Error, line, fd === STDOUT ? "stdout" : "stderr");
      }
      return memory().writeU32(u32(writtenPtr), written) ? WasiErrno.Success : WasiErrno.Fault;
    },

    fd_read(): WasiErrno {
      return WasiErrno.Nosys;
    },

    fd_seek(): WasiErrno {
      return WasiErrno.Success;
    },

    fd_close(): WasiErrno {
      return WasiErrno.Success;
    },

    fd_fdstat_get(fd: number, statPtr: number): WasiErrno {
      if (!isStdio(fd)) return WasiErrno.Badf;
      const ptr = u32(statPtr);
      const ok = memory().writeU64(ptr, 0n) && memory().writeU64(ptr + 8, RIGHTS_FD_WRITE) && memory().writeU64(ptr + 16, 0n);
      return ok ? WasiErrno.Success : WasiErrno.Fault;
    },

    fd_fdstat_set_flags(): WasiErrno {
      return WasiErrno.Nosys;
    },

    fd_prestat_get(): WasiErrno {
      return WasiErrno.Badf;
    },

    fd_prestat_dir_name(): WasiErrno {
      return WasiErrno.Nosys;
    },

    fd_filestat_get(): WasiErrno {
      return WasiErrno.Badf;
    },

    path_open(): WasiErrno {
      return WasiErrno.Noent;
    },

    path_filestat_get(): WasiErrno {
      return WasiErrno.Notsup;
    },

    environ_sizes_get(countPtr: number, bufferSizePtr: number): WasiErrno {
      const entries = vm.host.environment;
      const size = entries.reduce((total, entry) => total + entry.byteLength, 0);
      return memory().writeU32(u32(countPtr), entries.length) && memory().writeU32(u32(bufferSizePtr), size) ? WasiErrno.Success : WasiErrno.Fault;
    },

    environ_get(arrayPtr: number, bufferPtr: number): WasiErrno {
      let slot = u32(arrayPtr);
      let data = u32(bufferPtr);
      for (const entry of vm.host.environment) {
        if (!memory().writeU32(slot, data) || !memory().writeBytes(data, entry)) return WasiErrno.Fault;
        slot += 4;
        data += entry.byteLength;
      }
      return WasiErrno.Success;
    },

    args_sizes_get(countPtr: number, bufferSizePtr: number): WasiErrno {
      return memory().writeU32(u32(countPtr), 0) && memory().writeU32(u32(bufferSizePtr), 0) ? WasiErrno.Success : WasiErrno.Fault;
    },

    args_get(): WasiErrno {
      return WasiErrno.Success;
    },

    clock_time_get(clock: number, _precision: bigint, timePtr: number): WasiErrno {
      let now: bigint;
      if (clock === WasiClock.Realtime) now = vm.host.clock.realtimeNanos;
      else if (clock === WasiClock.Monotonic) now = vm.host.clock.monotonicNanos;
      else return WasiErrno.Notsup;
      return memory().writeU64(u32(timePtr), now) ? WasiErrno.Success : WasiErrno.Fault;
    },

    clock_res_get(clock: number, resolutionPtr: number): WasiErrno {
      if (clock !== WasiClock.Realtime && clock !== WasiClock.Monotonic) return WasiErrno.Notsup;
      return memory().writeU64(u32(resolutionPtr), 1n) ? WasiErrno.Success : WasiErrno.Fault;
    },

    random_get(bufferPtr: number, length: number): WasiErrno {
      if (u32(length) > MAX_RANDOM_BYTES) return WasiErrno.Inval;
      const target = memory().view8(u32(bufferPtr), u32(length));
      if (target === undefined) return WasiErrno.Fault;
      randomFillSync(target);
      return WasiErrno.Success;
    },

    poll_oneoff(_in: number, _out: number, _subscriptions: number, eventsPtr: number): WasiErrno {
      return memory().writeU32(u32(eventsPtr), 0) ? WasiErrno.Success : WasiErrno.Fault;
    },

    sched_yield(): WasiErrno {
      return WasiErrno.Success;
    },

    proc_exit(code: number): never {
      throw new GuestExit(u32(code));
    },
  };
}
