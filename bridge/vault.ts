// Credential values in and out of Valkey: sealed on the way in, opened on the way out.
// A blob that fails to open (copied to another key, tampered with, sealed with another secret)
// is a miss for the caller and one log line naming the key only.
import type { Logger } from "pino";
import type { ValueCipher } from "./cipher.ts";
import type { BlobStore } from "./store.ts";

export interface CredentialVault {
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer, ttlMs: number): Promise<void>;
}

export function createVault(store: BlobStore, cipher: ValueCipher, log: Logger): CredentialVault {
  return {
    async get(key) {
      const blob = await store.get(key);
      if (blob === null) return undefined;
      const value = cipher.open(key, blob);
      if (value === undefined) log.warn({ key }, "stored value failed authentication; answered as a miss");
      return value;
    },
    put: (key, value, ttlMs) => store.set(key, cipher.seal(key, value), ttlMs),
  };
}
