// Encryption at rest: a dump of Valkey must hold no plaintext credential.
// Blob layout: version (1 byte) | IV (12 bytes, random per write) | GCM tag (16 bytes) | ciphertext.
// The Valkey key is the additional authenticated data, so a blob copied under another identity's key
// fails authentication instead of handing that identity someone else's credential.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const ALGORITHM = "aes-256-gcm";
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
const VERSION_BYTE = Buffer.from([VERSION]);

export const KEY_BYTES = 32;

export interface ValueCipher {
  seal(valkeyKey: string, plaintext: Buffer): Buffer;
  /** The plaintext, or undefined when the blob is malformed, from another version, key or secret, or tampered with. */
  open(valkeyKey: string, blob: Buffer): Buffer | undefined;
}

export function createValueCipher(secret: Buffer): ValueCipher {
  if (secret.length !== KEY_BYTES) throw new Error(`AES-256-GCM needs a ${KEY_BYTES}-byte key`);
  return {
    seal(valkeyKey, plaintext) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(ALGORITHM, secret, iv);
      cipher.setAAD(Buffer.from(valkeyKey));
      const ciphertext = cipher.update(plaintext);
      cipher.final(); // GCM is a stream mode: final() adds no bytes, it computes the tag
      return Buffer.concat([VERSION_BYTE, iv, cipher.getAuthTag(), ciphertext], HEADER_BYTES + ciphertext.length);
    },
    open(valkeyKey, blob) {
      if (blob.length < HEADER_BYTES || blob[0] !== VERSION) return undefined;
      const decipher = createDecipheriv(ALGORITHM, secret, blob.subarray(1, 1 + IV_BYTES));
      decipher.setAuthTag(blob.subarray(1 + IV_BYTES, HEADER_BYTES));
      decipher.setAAD(Buffer.from(valkeyKey));
      const plaintext = decipher.update(blob.subarray(HEADER_BYTES));
      try {
        decipher.final();
      } catch {
        return undefined;
      }
      return plaintext;
    },
  };
}
