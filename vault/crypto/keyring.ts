// The key-encryption keys (KEKs) the vault holds: one active (it wraps every new data key), any
// number of older ones (they still unwrap what they wrapped, until `rotate-kek` has re-wrapped it
// all under the active one and they can be removed from the config). A KEK is a key file
// (kek-file.ts) or a key in AWS KMS (kek-kms.ts); both sit behind this one interface, so a
// deployment can also move from a file to KMS by rotation.
import type { Binding } from "./binding.ts";

export interface KeyEncryptionKey {
  /** The id stored beside every data key it wrapped (config `kek.keys[].id`). */
  readonly id: string;
  readonly kind: "file" | "kms";
  /** The data key wrapped for this one row; rejects with KekUnavailable when the KEK cannot be used now. */
  wrap(dek: Buffer, binding: Binding): Promise<Buffer>;
  /** The data key; rejects with IntegrityError when `wrapped` was not wrapped for this row by this KEK, KekUnavailable when the KEK cannot be used now. */
  unwrap(wrapped: Buffer, binding: Binding): Promise<Buffer>;
  close?(): void;
}

export class KeyRing {
  private readonly byId: ReadonlyMap<string, KeyEncryptionKey>;

  constructor(
    readonly active: KeyEncryptionKey,
    keys: readonly KeyEncryptionKey[],
  ) {
    this.byId = new Map(keys.map((key) => [key.id, key]));
    if (this.byId.get(active.id) !== active) throw new Error(`the active KEK ${active.id} must be one of the keys`);
  }

  get(id: string): KeyEncryptionKey | undefined {
    return this.byId.get(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  close(): void {
    for (const key of this.byId.values()) key.close?.();
  }
}
