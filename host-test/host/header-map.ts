// HTTP header maps with Envoy's semantics (Http::HeaderMapImpl as the Wasm context uses it):
// names are lower-cased (ASCII only) on every operation, a name may repeat, `add` appends,
// `replace` removes every entry of the name and appends one (setCopy), order is kept otherwise.

import { asciiLower, binaryFromText, textFromBinary } from "./binary-string.ts";
import { type Pair, serializePairs } from "./pairs.ts";

export type HeaderInput = Record<string, string> | Iterable<readonly [string, string]> | HeaderTemplate;

/**
 * Headers normalised once (names lower-cased, text to bytes) and serialised at most once, so a
 * test or benchmark can send the same header set many times without re-encoding it.
 */
export class HeaderTemplate {
  private serialization: Buffer | undefined;

  private constructor(readonly pairs: readonly Pair[]) {}

  static of(input: HeaderInput): HeaderTemplate {
    if (input instanceof HeaderTemplate) return input;
    const entries = Symbol.iterator in input ? input : Object.entries(input);
    const pairs: Pair[] = [];
    for (const [name, value] of entries as Iterable<readonly [string, string]>) {
      pairs.push([asciiLower(binaryFromText(name)), binaryFromText(value)]);
    }
    return new HeaderTemplate(pairs);
  }

  /** From pairs that are already bytes (binary strings), e.g. parsed from the guest. */
  static fromPairs(pairs: readonly Pair[]): HeaderTemplate {
    return new HeaderTemplate(pairs.map(([name, value]) => [asciiLower(name), value] as const));
  }

  serialized(): Buffer {
    return (this.serialization ??= serializePairs(this.pairs));
  }
}

export class HeaderMap {
  /** Shared with the template until the first change (copy on write). */
  private pairs: Pair[];
  private template: HeaderTemplate | undefined;
  private serialization: Buffer | undefined;

  constructor(template: HeaderTemplate = HeaderTemplate.of([])) {
    this.pairs = template.pairs as Pair[];
    this.template = template;
  }

  get count(): number {
    return this.pairs.length;
  }

  /** Envoy's HeaderMap::byteSize, which proxy_get_header_map_size reports. */
  byteSize(): number {
    let size = 0;
    for (const [name, value] of this.pairs) size += name.length + value.length;
    return size;
  }

  entries(): readonly Pair[] {
    return this.pairs;
  }

  /** The first value of `name` (Envoy returns only the first of repeated headers). */
  get(name: string): string | undefined {
    const key = asciiLower(name);
    for (const pair of this.pairs) if (pair[0] === key) return pair[1];
    return undefined;
  }

  add(name: string, value: string): void {
    this.mutable().push([asciiLower(name), value]);
  }

  replace(name: string, value: string): void {
    const key = asciiLower(name);
    const pairs = this.mutable().filter((pair) => pair[0] !== key);
    pairs.push([key, value]);
    this.pairs = pairs;
  }

  remove(name: string): void {
    const key = asciiLower(name);
    if (this.pairs.some((pair) => pair[0] === key)) this.pairs = this.mutable().filter((pair) => pair[0] !== key);
  }

  replaceAll(pairs: readonly Pair[]): void {
    this.pairs = pairs.map(([name, value]) => [asciiLower(name), value] as const);
    this.template = undefined;
    this.serialization = undefined;
  }

  /** Unchanged maps reuse their template's serialization. */
  serialized(): Buffer {
    if (this.template !== undefined) return this.template.serialized();
    return (this.serialization ??= serializePairs(this.pairs));
  }

  snapshot(): Headers {
    return new Headers(this.pairs.slice());
  }

  private mutable(): Pair[] {
    if (this.template !== undefined) {
      this.pairs = this.pairs.slice();
      this.template = undefined;
    }
    this.serialization = undefined;
    return this.pairs;
  }
}

/** A read-only header list for assertions, in text (bytes decoded as UTF-8). */
export class Headers {
  constructor(private readonly pairs: readonly Pair[]) {}

  get size(): number {
    return this.pairs.length;
  }

  get(name: string): string | undefined {
    const values = this.getAll(name);
    return values.length > 0 ? values[0] : undefined;
  }

  getAll(name: string): string[] {
    const key = asciiLower(binaryFromText(name));
    return this.pairs.filter((pair) => pair[0] === key).map((pair) => textFromBinary(pair[1]));
  }

  has(name: string): boolean {
    return this.getAll(name).length > 0;
  }

  /** Names and values as text, in order. */
  entries(): [string, string][] {
    return this.pairs.map(([name, value]) => [textFromBinary(name), textFromBinary(value)]);
  }

  /** Names and values exactly as bytes (binary strings), for checks of well-formedness. */
  rawEntries(): readonly Pair[] {
    return this.pairs;
  }
}
