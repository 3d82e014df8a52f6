// Inside the host, header names and values, property paths and shared-data keys are byte
// sequences, held as "binary strings": one UTF-16 unit per byte (latin1). That keeps any byte the
// guest sends lossless, makes Map lookups and comparisons plain string operations, and Node copies
// latin1 to and from wasm memory natively. Tests speak UTF-8 text; these functions convert.

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const ASCII_UPPER = /[A-Z]/;

/** UTF-8 text → binary string of its UTF-8 bytes. ASCII is already its own encoding. */
export function binaryFromText(text: string): string {
  return ASCII_ONLY.test(text) ? text : Buffer.from(text, "utf8").toString("latin1");
}

/** Binary string → text, decoding its bytes as UTF-8 (invalid sequences become U+FFFD). */
export function textFromBinary(binary: string): string {
  return ASCII_ONLY.test(binary) ? binary : Buffer.from(binary, "latin1").toString("utf8");
}

export function bytesFromBinary(binary: string): Uint8Array {
  return Buffer.from(binary, "latin1");
}

export function binaryFromBytes(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

export function bytesFromText(text: string): Uint8Array {
  return Buffer.from(text, "utf8");
}

export function textFromBytes(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
}

/** Envoy's LowerCaseString (absl::AsciiStrToLower): only A–Z change, other bytes are kept. */
export function asciiLower(binary: string): string {
  return ASCII_UPPER.test(binary) ? binary.replace(/[A-Z]+/g, (run) => run.toLowerCase()) : binary;
}
