// The buffers proxy_get_buffer_bytes / proxy_set_buffer_bytes reach, with Envoy's write rules.

import { Status } from "./abi.ts";

export interface HostBuffer {
  readonly size: number;
  /** Bytes [start, start + length), clamped by the caller to the buffer. */
  read(start: number, length: number): Uint8Array;
  write(start: number, length: number, data: Uint8Array): Status;
}

const EMPTY = new Uint8Array(0);

/**
 * A body buffer (Envoy's Buffer::Instance through the Wasm Buffer wrapper). Chunks are kept by
 * reference, never written into (every change builds a new array), so a caller must not change a
 * chunk after handing it over.
 */
export class BodyBuffer implements HostBuffer {
  private bytes: Uint8Array = EMPTY;

  get size(): number {
    return this.bytes.byteLength;
  }

  contents(): Uint8Array {
    return this.bytes;
  }

  read(start: number, length: number): Uint8Array {
    return this.bytes.subarray(start, start + length);
  }

  append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (this.bytes.byteLength === 0) {
      this.bytes = chunk;
      return;
    }
    const joined = new Uint8Array(this.bytes.byteLength + chunk.byteLength);
    joined.set(this.bytes, 0);
    joined.set(chunk, this.bytes.byteLength);
    this.bytes = joined;
  }

  /** Hands the contents on and empties the buffer. */
  drain(): Uint8Array {
    const bytes = this.bytes;
    this.bytes = EMPTY;
    return bytes;
  }

  /**
   * Envoy's Buffer::copyFrom: start 0 drains `length` bytes then prepends (so (0, size) replaces
   * the whole body), start at or past the end appends, anything in between is BadArgument.
   */
  write(start: number, length: number, data: Uint8Array): Status {
    if (start === 0) {
      const kept = this.bytes.subarray(Math.min(length, this.bytes.byteLength));
      const joined = new Uint8Array(data.byteLength + kept.byteLength);
      joined.set(data, 0);
      joined.set(kept, data.byteLength);
      this.bytes = joined;
      return Status.Ok;
    }
    if (start >= this.bytes.byteLength) {
      this.append(data);
      return Status.Ok;
    }
    return Status.BadArgument;
  }
}

/** Configuration, an http-call response, or a body the current callback has no access to. */
export class ReadOnlyBuffer implements HostBuffer {
  static readonly EMPTY = new ReadOnlyBuffer(EMPTY);

  constructor(private readonly bytes: Uint8Array) {}

  get size(): number {
    return this.bytes.byteLength;
  }

  read(start: number, length: number): Uint8Array {
    return this.bytes.subarray(start, start + length);
  }

  /** cpp-host's BufferBase::copyFrom: "Setting a string buffer not supported". */
  write(): Status {
    return Status.BadArgument;
  }
}
