// Property values (Envoy "attributes") and their serialisation as Envoy's Wasm Context::getProperty
// returns them (serializeValue in source/extensions/common/wasm/context.cc):
//   string / bytes → the raw bytes;  int64, uint64, double → 8 bytes little-endian;  bool → 1 byte;
//   map → serialized pairs of (key, serialized value);  list → serialized pairs of (serialized item, "").
// A path is its segments joined by NUL; a segment selects a map key or a list index.
// A JS number is a double, as the numbers of a protobuf Struct (dynamic metadata) are.

import { binaryFromBytes, binaryFromText, bytesFromText } from "./binary-string.ts";
import { type Pair, serializePairs } from "./pairs.ts";

export class Int64 {
  constructor(readonly value: bigint) {}
}

export class Uint64 {
  constructor(readonly value: bigint) {}
}

export type PropertyValue =
  | string
  | number
  | boolean
  | Uint8Array
  | Int64
  | Uint64
  | readonly PropertyValue[]
  | { readonly [key: string]: PropertyValue };

export type Properties = { readonly [name: string]: PropertyValue };

export function serializeProperty(value: PropertyValue): Uint8Array {
  if (typeof value === "string") return bytesFromText(value);
  if (value instanceof Uint8Array) return value;
  if (typeof value === "boolean") return Uint8Array.of(value ? 1 : 0);
  if (typeof value === "number") return eightBytes((view) => view.setFloat64(0, value, true));
  if (value instanceof Int64) return eightBytes((view) => view.setBigInt64(0, value.value, true));
  if (value instanceof Uint64) return eightBytes((view) => view.setBigUint64(0, value.value, true));
  const pairs: Pair[] = Array.isArray(value)
    ? value.map((item: PropertyValue) => [binaryFromBytes(serializeProperty(item)), ""] as const)
    : Object.entries(value).map(([key, item]) => [binaryFromText(key), binaryFromBytes(serializeProperty(item))] as const);
  return serializePairs(pairs);
}

/**
 * A set of properties, flattened once into path → serialized value, so that a lookup by the
 * guest's path bytes is a single Map access. Flattening is cached per properties object.
 */
export class PropertySet {
  private static readonly cache = new WeakMap<Properties, PropertySet>();
  static readonly EMPTY = new PropertySet(new Map());

  private constructor(private readonly values: ReadonlyMap<string, Uint8Array>) {}

  static of(properties: Properties): PropertySet {
    let set = PropertySet.cache.get(properties);
    if (set === undefined) {
      const values = new Map<string, Uint8Array>();
      for (const [name, value] of Object.entries(properties)) flatten(binaryFromText(name), value, values);
      set = new PropertySet(values);
      PropertySet.cache.set(properties, set);
    }
    return set;
  }

  /** `path` is the guest's path as a binary string (segments joined by NUL). */
  lookup(path: string): Uint8Array | undefined {
    return this.values.get(path);
  }
}

function flatten(path: string, value: PropertyValue, into: Map<string, Uint8Array>): void {
  into.set(path, serializeProperty(value));
  if (Array.isArray(value)) {
    value.forEach((item: PropertyValue, index: number) => flatten(`${path}\0${index}`, item, into));
  } else if (isMap(value)) {
    for (const [key, item] of Object.entries(value)) flatten(`${path}\0${binaryFromText(key)}`, item, into);
  }
}

function isMap(value: PropertyValue): value is { readonly [key: string]: PropertyValue } {
  return typeof value === "object" && !(value instanceof Uint8Array) && !(value instanceof Int64) && !(value instanceof Uint64);
}

function eightBytes(write: (view: DataView) => void): Uint8Array {
  const bytes = new Uint8Array(8);
  write(new DataView(bytes.buffer));
  return bytes;
}

