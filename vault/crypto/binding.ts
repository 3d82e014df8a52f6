// What a ciphertext is bound to: the row it was written for. Every encryption of the vault (the
// value under its data key, the data key under a file KEK) authenticates this tuple as associated
// data, and KMS gets it as the encryption context, so bytes copied to another namespace, name,
// scope or version fail to decrypt instead of handing the wrong caller a secret.
export interface Binding {
  readonly trustDomain: string;
  readonly tenant: string;
  readonly agent: string;
  /** "*" or the role. */
  readonly scope: string;
  readonly name: string;
  readonly version: number;
}

/**
 * A label, then each field as a 4-byte big-endian length and its UTF-8 bytes. Length prefixes make
 * the encoding injective: no two different tuples (("a", "bc") and ("ab", "c")) give the same bytes,
 * whatever characters the fields hold.
 */
export function encodeAad(label: string, binding: Binding, ...extra: string[]): Buffer {
  const fields = [label, binding.trustDomain, binding.tenant, binding.agent, binding.scope, binding.name, String(binding.version), ...extra];
  const parts: Buffer[] = [];
  for (const field of fields) {
    const bytes = Buffer.from(field, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}
