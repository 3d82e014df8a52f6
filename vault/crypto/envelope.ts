// Envelope encryption of one secret version: KEK → DEK → value.
//
// Every version gets a fresh 32-byte data key (DEK). The value is encrypted with it under
// AES-256-GCM (a 12-byte random nonce; a key is used for exactly one message, so nonce reuse is
// impossible by construction), with the row's binding (trust domain, tenant, agent, scope, name,
// version) as associated data: a ciphertext moved to another row fails authentication. The DEK is
// stored only wrapped by the active KEK, beside that KEK's id; rotating the KEK re-wraps DEKs and
// never touches the value ciphertexts.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { IntegrityError } from "../errors.ts";
import { encodeAad, type Binding } from "./binding.ts";
import type { KeyRing } from "./keyring.ts";

export const DEK_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const VALUE_LABEL = "hexr-vault/value/v1";

/** What the store keeps for one version: no column holds the value or the DEK in the clear. */
export interface SealedValue {
  /** 12 bytes. */
  nonce: Buffer;
  /** The AES-256-GCM ciphertext followed by its 16-byte tag. */
  ciphertext: Buffer;
  /** Which KEK wrapped the DEK. */
  kekId: string;
  wrappedDek: Buffer;
}

export async function sealValue(value: string, binding: Binding, keyring: KeyRing): Promise<SealedValue> {
  const dek = randomBytes(DEK_BYTES);
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", dek, nonce);
    cipher.setAAD(encodeAad(VALUE_LABEL, binding));
    const encrypted = Buffer.concat([cipher.update(value, "utf8"), cipher.final(), cipher.getAuthTag()]);
    const kek = keyring.active;
    return { nonce, ciphertext: encrypted, kekId: kek.id, wrappedDek: await kek.wrap(dek, binding) };
  } finally {
    dek.fill(0);
  }
}

/**
 * The value, or IntegrityError when anything stored was altered or belongs to another row;
 * KekUnavailable when the KEK cannot be used now. An unknown KEK id is an error of its own:
 * configuration dropped a KEK that data still needs (the vault refuses to start in that case).
 */
export async function openValue(sealed: SealedValue, binding: Binding, keyring: KeyRing): Promise<string> {
  const kek = keyring.get(sealed.kekId);
  if (!kek) throw new Error(`KEK ${sealed.kekId} is not configured (kek.keys): it wrapped this secret's data key`);
  if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) throw new IntegrityError("malformed ciphertext");
  const dek = await kek.unwrap(sealed.wrappedDek, binding);
  try {
    const decipher = createDecipheriv("aes-256-gcm", dek, sealed.nonce);
    decipher.setAAD(encodeAad(VALUE_LABEL, binding));
    decipher.setAuthTag(sealed.ciphertext.subarray(sealed.ciphertext.length - TAG_BYTES));
    const plaintext = decipher.update(sealed.ciphertext.subarray(0, sealed.ciphertext.length - TAG_BYTES));
    try {
      decipher.final();
    } catch {
      plaintext.fill(0);
      throw new IntegrityError("the value failed authentication");
    }
    const value = plaintext.toString("utf8");
    plaintext.fill(0);
    return value;
  } finally {
    dek.fill(0);
  }
}

/** Unwraps under whichever KEK wrapped it and wraps again under the active one (rotate-kek): the value's ciphertext is not involved. */
export async function rewrapDek(wrappedDek: Buffer, kekId: string, binding: Binding, keyring: KeyRing): Promise<{ kekId: string; wrappedDek: Buffer }> {
  const from = keyring.get(kekId);
  if (!from) throw new Error(`KEK ${kekId} is not configured (kek.keys): add it back until rotate-kek has finished`);
  const dek = await from.unwrap(wrappedDek, binding);
  try {
    return { kekId: keyring.active.id, wrappedDek: await keyring.active.wrap(dek, binding) };
  } finally {
    dek.fill(0);
  }
}
