// The KEKs of the config, loaded (key files read, or generated in development; one KMS client
// shared by every KMS key), and checked against the store before the vault serves: every KEK id
// the stored data keys name must be configured, and each configured key must unwrap one of its own
// data keys. A KEK removed from the config too early, or a key file replaced by another key, stops
// the vault at start instead of answering 503 for every secret it wrapped.
import type { Logger } from "pino";
import type { KekConfig } from "./config.ts";
import { KekUnavailable } from "./errors.ts";
import { ensureKekFile, fileKek, readKekFile } from "./crypto/kek-file.ts";
import { createKmsClient, kmsKek } from "./crypto/kek-kms.ts";
import { KeyRing, type KeyEncryptionKey } from "./crypto/keyring.ts";
import type { VaultStore } from "./store/store.ts";

export function loadKeyRing(config: KekConfig, log: Logger): KeyRing {
  const kms = config.kms ? createKmsClient(config.kms) : null;
  const keys = config.keys.map((key): KeyEncryptionKey => {
    if ("file" in key) {
      if (config.generate_missing && key.id === config.active && ensureKekFile(key.file)) {
        log.warn({ kek: key.id, file: key.file }, "generated a new KEK file (kek.generate_missing): back it up, or every secret it wraps is lost with it");
      }
      try {
        return fileKek(key.id, readKekFile(key.file));
      } catch (error) {
        throw new Error(`KEK ${key.id}: ${(error as Error).message}`);
      }
    }
    return kmsKek(key.id, key.kms_key_id, kms!, config.kms!.timeout_ms);
  });
  const ring = new KeyRing(keys.find((key) => key.id === config.active)!, keys);
  const close = ring.close.bind(ring);
  ring.close = () => {
    close();
    kms?.destroy();
  };
  return ring;
}

/** Throws when stored data keys need a KEK the config lacks, or a configured key is not the one that wrapped its data keys. */
export async function checkKeyRing(store: VaultStore, ring: KeyRing, log: Logger): Promise<void> {
  const usage = await store.kekUsage();
  const missing = [...usage.keys()].filter((id) => !ring.get(id));
  if (missing.length > 0) {
    const counts = missing.map((id) => `${id} (${usage.get(id)} versions)`).join(", ");
    throw new Error(`stored data keys are wrapped by KEKs the config does not list: ${counts}. Add them back to kek.keys; remove a KEK only after rotate-kek has re-wrapped everything under the active one`);
  }
  for (const id of usage.keys()) {
    // A few samples: one damaged row must not stop the vault (it answers 503 for that row alone).
    const samples = await store.sampleWrappedBy(id, 3);
    const failures: string[] = [];
    for (const sample of samples) {
      const binding = { ...sample.key, scope: sample.scope, version: sample.version };
      try {
        (await ring.get(id)!.unwrap(sample.wrappedDek, binding)).fill(0);
        break;
      } catch (error) {
        if (error instanceof KekUnavailable) {
          // KMS down at start: serve anyway (puts and gets answer 503 until it is back).
          log.warn({ kek: id, reason: error.message }, "cannot check this KEK now");
          break;
        }
        failures.push((error as Error).message);
      }
    }
    if (samples.length > 0 && failures.length === samples.length) {
      throw new Error(`KEK ${id} does not unwrap the data keys stored under its id (${failures[0]}): is it the right key file or KMS key?`);
    }
  }
}
