// A KEK kept in a key file: 32 random bytes (base64 when the vault generates it; the bridge's
// reader, bridge/keyfile.ts, also takes raw bytes or hex), readable by the vault's user alone.
// Wrapping is AES-256-GCM under the KEK with its id and the row's binding as associated data, so a
// wrapped DEK only unwraps under the KEK that claims it and for the row it was written for.
//
// Whoever reads this file and the database reads every secret: mount it 0600 (0400) for the
// vault's user only, keep it out of backups of the database, or use KMS (kek-kms.ts) instead.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { KEY_BYTES } from "../../bridge/cipher.ts";
import { loadKeyFile } from "../../bridge/keyfile.ts";
import { IntegrityError } from "../errors.ts";
import { encodeAad, type Binding } from "./binding.ts";
import type { KeyEncryptionKey } from "./keyring.ts";

const WRAP_LABEL = "hexr-vault/dek/v1";
const FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The key in `file`; refused when group or others may read it (it would be a secret shared with them). */
export function readKekFile(file: string): Buffer {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    mode = 0; // loadKeyFile says what is wrong with a missing or unreadable file
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(`KEK file ${file} is accessible to group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  }
  return loadKeyFile(file);
}

/**
 * Creates `file` with a fresh random key (base64, mode 0600, in a 0700 folder when it creates one)
 * unless it exists; returns whether it created it. Never overwrites: a KEK that wrapped data is
 * irreplaceable.
 */
export function ensureKekFile(file: string): boolean {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, randomBytes(KEY_BYTES).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return false;
  }
}

export function fileKek(id: string, key: Buffer): KeyEncryptionKey {
  if (key.length !== KEY_BYTES) throw new Error(`KEK ${id}: AES-256 needs a ${KEY_BYTES}-byte key`);
  const aad = (binding: Binding) => encodeAad(WRAP_LABEL, binding, id);
  return {
    id,
    kind: "file",
    async wrap(dek, binding) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      cipher.setAAD(aad(binding));
      const encrypted = Buffer.concat([cipher.update(dek), cipher.final()]);
      return Buffer.concat([Buffer.from([FORMAT]), nonce, cipher.getAuthTag(), encrypted]);
    },
    async unwrap(wrapped, binding) {
      if (wrapped.length !== 1 + NONCE_BYTES + TAG_BYTES + KEY_BYTES || wrapped[0] !== FORMAT) {
        throw new IntegrityError(`the data key is not one KEK ${id} wrapped`);
      }
      const decipher = createDecipheriv("aes-256-gcm", key, wrapped.subarray(1, 1 + NONCE_BYTES));
      decipher.setAAD(aad(binding));
      decipher.setAuthTag(wrapped.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES));
      const dek = decipher.update(wrapped.subarray(1 + NONCE_BYTES + TAG_BYTES));
      try {
        decipher.final();
      } catch {
        dek.fill(0);
        throw new IntegrityError(`the data key failed authentication under KEK ${id}`);
      }
      return dek;
    },
  };
}
