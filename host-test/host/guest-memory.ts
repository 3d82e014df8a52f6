// Bounds-checked access to a VM's linear memory, the way proxy-wasm-cpp-host's getMemory/setWord
// do it: an out-of-range pointer is reported to the caller (who answers InvalidMemoryAccess or
// WASI FAULT), never thrown. Strings cross the boundary as "binary strings" (one char per byte,
// latin1), which keeps arbitrary bytes lossless and lets Node copy them natively.

import { type Pair, parsePairs } from "./pairs.ts";

/** Allocates `size` bytes inside the guest (its proxy_on_memory_allocate or malloc); 0 on failure. */
export type GuestAllocator = (size: number) => number;

/**
 * Node's Buffer methods behind toString(encoding) and write(encoding): present in every Node
 * release, skipped by the public API's per-call encoding dispatch (a measurable cost on hot paths).
 */
interface BufferFastPaths {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  latin1Write(text: string, offset: number, length: number): number;
}

export class GuestMemory {
  private bytes!: Buffer & BufferFastPaths;
  /** A plain view too: its slice() copies without Buffer's subclass machinery. */
  private plain!: Uint8Array;
  private view!: DataView;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly allocate: GuestAllocator,
  ) {
    this.remap();
  }

  /** The guest may grow its memory in any call; growth detaches the previous ArrayBuffer (length 0). */
  private current(): Buffer & BufferFastPaths {
    if (this.bytes.byteLength === 0) this.remap();
    return this.bytes;
  }

  private remap(): void {
    const buffer = this.memory.buffer;
    this.bytes = Buffer.from(buffer) as Buffer & BufferFastPaths;
    this.plain = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  contains(ptr: number, size: number): boolean {
    return ptr + size <= this.current().byteLength;
  }

  /** A view of guest bytes (valid until the guest runs again), or undefined if out of range. */
  view8(ptr: number, size: number): Buffer | undefined {
    const bytes = this.current();
    if (ptr + size > bytes.byteLength) return undefined;
    return bytes.subarray(ptr, ptr + size);
  }

  /** A copy of guest bytes that outlives the call (Buffer#slice would be a view; Uint8Array#slice copies). */
  copy(ptr: number, size: number): Uint8Array | undefined {
    if (ptr + size > this.current().byteLength) return undefined;
    return this.plain.slice(ptr, ptr + size);
  }

  latin1(ptr: number, size: number): string | undefined {
    const bytes = this.current();
    if (ptr + size > bytes.byteLength) return undefined;
    return bytes.latin1Slice(ptr, ptr + size);
  }

  utf8(ptr: number, size: number): string | undefined {
    const bytes = this.current();
    if (ptr + size > bytes.byteLength) return undefined;
    return bytes.utf8Slice(ptr, ptr + size);
  }

  /** Serialized pairs read in place (malformed → empty, as cpp-host), or undefined if out of range. */
  pairs(ptr: number, size: number): Pair[] | undefined {
    const bytes = this.current();
    if (ptr + size > bytes.byteLength) return undefined;
    return parsePairs(bytes, ptr, ptr + size);
  }

  readU32(ptr: number): number | undefined {
    if (ptr + 4 > this.current().byteLength) return undefined;
    return this.view.getUint32(ptr, true);
  }

  writeU32(ptr: number, value: number): boolean {
    if (ptr + 4 > this.current().byteLength) return false;
    this.view.setUint32(ptr, value, true);
    return true;
  }

  writeU64(ptr: number, value: bigint): boolean {
    if (ptr + 8 > this.current().byteLength) return false;
    this.view.setBigUint64(ptr, value, true);
    return true;
  }

  writeBytes(ptr: number, data: Uint8Array): boolean {
    const bytes = this.current();
    if (ptr + data.byteLength > bytes.byteLength) return false;
    bytes.set(data, ptr);
    return true;
  }

  /**
   * cpp-host's copyToPointerSize: allocate in the guest, copy, write pointer and size.
   * An empty value is returned as (0, 0) without allocating.
   */
  returnBytes(data: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (data.byteLength > 0) {
      ptr = this.allocate(data.byteLength) >>> 0;
      if (ptr === 0 || !this.writeBytes(ptr, data)) return false;
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, data.byteLength);
  }

  /** returnBytes for a binary string. */
  returnLatin1(value: string, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (value.length > 0) {
      ptr = this.allocate(value.length) >>> 0;
      if (ptr === 0 || !this.contains(ptr, value.length)) return false;
      this.current().latin1Write(value, ptr, value.length);
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, value.length);
  }
}
