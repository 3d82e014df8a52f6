import { createDecipheriv, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createValueCipher } from "../cipher.ts";

const KEY_A = "cred:spiffe://hexr.test/agent/acme/a1/worker:aws_s3:us-east-1";
const KEY_B = "cred:spiffe://hexr.test/agent/evil/a1/worker:aws_s3:us-east-1";

describe("value cipher (AES-256-GCM, key as AAD)", () => {
  const secret = randomBytes(32);
  const cipher = createValueCipher(secret);
  const plaintext = Buffer.from('{"SecretAccessKey":"wJalrXUtnFEMI/K7MDENG"}');

  it("lays out version | IV | tag | ciphertext and decrypts with standard AES-256-GCM", () => {
    const blob = cipher.seal(KEY_A, plaintext);
    expect(blob.length).toBe(1 + 12 + 16 + plaintext.length);
    expect(blob[0]).toBe(1);
    const decipher = createDecipheriv("aes-256-gcm", secret, blob.subarray(1, 13));
    decipher.setAuthTag(blob.subarray(13, 29));
    decipher.setAAD(Buffer.from(KEY_A));
    const decrypted = Buffer.concat([decipher.update(blob.subarray(29)), decipher.final()]);
    expect(decrypted.equals(plaintext)).toBe(true);
    expect(cipher.open(KEY_A, blob)?.equals(plaintext)).toBe(true);
  });

  it("uses a fresh IV for every write", () => {
    const first = cipher.seal(KEY_A, plaintext);
    const second = cipher.seal(KEY_A, plaintext);
    expect(first.subarray(1, 13).equals(second.subarray(1, 13))).toBe(false);
    expect(first.subarray(29).equals(second.subarray(29))).toBe(false);
  });

  it("round-trips empty values", () => {
    expect(cipher.open(KEY_A, cipher.seal(KEY_A, Buffer.alloc(0)))?.length).toBe(0);
  });

  it("refuses a blob under another key, a tampered blob, another version, another secret, a short blob", () => {
    const blob = cipher.seal(KEY_A, plaintext);
    expect(cipher.open(KEY_B, blob)).toBeUndefined();
    for (const index of [5, 20, 29, blob.length - 1]) {
      const tampered = Buffer.from(blob);
      tampered[index] ^= 0x01;
      expect(cipher.open(KEY_A, tampered)).toBeUndefined();
    }
    const otherVersion = Buffer.from(blob);
    otherVersion[0] = 2;
    expect(cipher.open(KEY_A, otherVersion)).toBeUndefined();
    expect(createValueCipher(randomBytes(32)).open(KEY_A, blob)).toBeUndefined();
    expect(cipher.open(KEY_A, blob.subarray(0, 28))).toBeUndefined();
    expect(cipher.open(KEY_A, Buffer.from("plain text that was never sealed"))).toBeUndefined();
  });

  it("rejects secrets that are not 32 bytes", () => {
    expect(() => createValueCipher(randomBytes(16))).toThrow(/32-byte key/);
  });
});
