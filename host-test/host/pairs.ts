// The ABI's serialized map ("Serialization" in the v0.2.1 spec, PairsUtil in proxy-wasm-cpp-host):
//   u32 count, count × (u32 name length, u32 value length), then each name and value followed by NUL.
// Names and values are binary strings (see binary-string.ts).

export type Pair = readonly [name: string, value: string];

/** cpp-host refuses (reads as empty) anything larger than these. */
const MAX_PAIRS_BYTES = 1024 * 1024;
const MAX_PAIRS_COUNT = 1024;

export function serializedPairsSize(pairs: readonly Pair[]): number {
  let size = 4;
  for (const [name, value] of pairs) size += 8 + name.length + 1 + value.length + 1;
  return size;
}

/** Writes `pairs` at `offset`; the caller reserved serializedPairsSize(pairs) bytes. */
export function writePairs(pairs: readonly Pair[], target: Buffer, offset: number): void {
  target.writeUInt32LE(pairs.length, offset);
  let sizes = offset + 4;
  let data = sizes + 8 * pairs.length;
  for (const [name, value] of pairs) {
    target.writeUInt32LE(name.length, sizes);
    target.writeUInt32LE(value.length, sizes + 4);
    sizes += 8;
    data += target.write(name, data, "latin1");
    target[data++] = 0;
    data += target.write(value, data, "latin1");
    target[data++] = 0;
  }
}

export function serializePairs(pairs: readonly Pair[]): Buffer {
  const bytes = Buffer.alloc(serializedPairsSize(pairs));
  writePairs(pairs, bytes, 0);
  return bytes;
}

/**
 * cpp-host's PairsUtil::toPairs over bytes [start, end): any malformation (short buffer, missing NUL terminator, trailing
 * bytes, too many pairs) yields an empty list rather than an error, and the host carries on.
 */
export function parsePairs(bytes: Buffer, start = 0, end = bytes.byteLength): Pair[] {
  if (end - start < 4 || end - start > MAX_PAIRS_BYTES) return [];
  const count = bytes.readUInt32LE(start);
  if (count > MAX_PAIRS_COUNT || start + 4 + count * 8 > end) return [];
  const pairs: Pair[] = [];
  let data = start + 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const nameLength = bytes.readUInt32LE(start + 4 + i * 8);
    const valueLength = bytes.readUInt32LE(start + 8 + i * 8);
    if (data + nameLength + 1 > end || bytes[data + nameLength] !== 0) return [];
    const name = bytes.toString("latin1", data, data + nameLength);
    data += nameLength + 1;
    if (data + valueLength + 1 > end || bytes[data + valueLength] !== 0) return [];
    const value = bytes.toString("latin1", data, data + valueLength);
    data += valueLength + 1;
    pairs.push([name, value]);
  }
  return data === end ? pairs : [];
}
