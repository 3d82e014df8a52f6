// Shared key-value data (proxy-wasm-cpp-host src/shared_data.cc): one store for every VM of the
// host, as Envoy shares it between the worker threads' VMs of one vm_id. Every write gives the
// entry a fresh, never-zero CAS value; a write with a non-zero cas succeeds only if it matches.

import { Status } from "./abi.ts";
import { binaryFromText, textFromBinary, textFromBytes } from "./binary-string.ts";

export interface SharedEntry {
  readonly value: Uint8Array;
  readonly cas: number;
}

export class SharedData {
  private readonly entries = new Map<string, SharedEntry>();
  private nextCasValue = 1;

  /** `key` is a binary string (the guest's bytes). */
  get(key: string): SharedEntry | undefined {
    return this.entries.get(key);
  }

  /** proxy_set_shared_data: cas 0 writes unconditionally; `value` must be the host's own copy. */
  set(key: string, value: Uint8Array, cas: number): Status {
    const existing = this.entries.get(key);
    if (existing !== undefined && cas !== 0 && cas !== existing.cas) return Status.CasMismatch;
    this.entries.set(key, { value, cas: this.nextCas() });
    return Status.Ok;
  }

  // Test-side access, with text keys and values.

  read(key: string): { text: string; value: Uint8Array; cas: number } | undefined {
    const entry = this.entries.get(binaryFromText(key));
    return entry && { text: textFromBytes(entry.value), value: entry.value, cas: entry.cas };
  }

  write(key: string, value: string | Uint8Array): void {
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : new Uint8Array(value);
    this.set(binaryFromText(key), bytes, 0);
  }

  /** Every key, as text. */
  keys(): string[] {
    return [...this.entries.keys()].map(textFromBinary);
  }

  delete(key: string): boolean {
    return this.entries.delete(binaryFromText(key));
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private nextCas(): number {
    const cas = this.nextCasValue;
    this.nextCasValue = cas === 0xffff_ffff ? 1 : cas + 1;
    return cas;
  }
}
