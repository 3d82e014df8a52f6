// A small JSON parser (RFC 8259) that reports errors instead of aborting: request bodies are
// attacker-controlled, and an abort would trap the VM. Depth and size are bounded by the caller.

export const enum JsonKind { Null, Bool, Number, String, Array, Object }

const NO_ITEMS = new Array<JsonValue>(0);
import { decimal } from "./ascii";
import { message } from "./message";
const NO_KEYS = new Array<string>(0);

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  boolean: bool = false;
  number: f64 = 0;
  text: string = "";
  /** Members (objects) or elements (arrays); leaves share one empty list, so they allocate none. */
  items: JsonValue[] = NO_ITEMS;
  keys: string[] = NO_KEYS;

  /** The member named `key` of an object, or null (also for non-objects). */
  member(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null;
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  isInteger(): bool {
    return this.kind == JsonKind.Number && Math.floor(this.number) == this.number && Math.abs(this.number) < 9007199254740992.0;
  }
}

export class JsonResult {
  constructor(public value: JsonValue | null, public error: string) {}
}

const MAX_DEPTH = 32;

class Parser {
  pos: i32 = 0;
  depth: i32 = 0;
  error: string = "";

  constructor(private src: string) {}

  fail(problem: string): JsonValue | null {
    if (this.error.length == 0) this.error = problem + " at offset " + decimal(this.pos);
    return null;
  }

  private invalidNumber(): JsonValue | null {
    return this.fail(message("invalid number"));
  }

  peek(): i32 { return this.src.charCodeAt(this.pos); }

  skipWhitespace(): void {
    let c = this.peek();
    while (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) c = this.src.charCodeAt(++this.pos);
  }

  parseValue(): JsonValue | null {
    this.skipWhitespace();
    const c = this.peek();
    if (c == 0x7b) return this.parseObject();
    if (c == 0x5b) return this.parseArray();
    if (c == 0x22) {
      const text = this.parseString();
      if (text === null) return null;
      const value = new JsonValue();
      value.kind = JsonKind.String;
      value.text = text;
      return value;
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
    if (this.consumeWord("true")) return literal(JsonKind.Bool, true);
    if (this.consumeWord("false")) return literal(JsonKind.Bool, false);
    if (this.consumeWord("null")) return literal(JsonKind.Null, false);
    return this.fail(c < 0 ? message("unexpected end of input") : message("unexpected character"));
  }

  consumeWord(word: string): bool {
    if (this.src.length - this.pos < word.length) return false;
    for (let i = 0; i < word.length; i++) {
      if (this.src.charCodeAt(this.pos + i) != word.charCodeAt(i)) return false;
    }
    this.pos += word.length;
    return true;
  }

  enter(): bool {
    if (++this.depth > MAX_DEPTH) {
      this.fail(message("nesting too deep"));
      return false;
    }
    this.pos++;
    return true;
  }

  parseObject(): JsonValue | null {
    if (!this.enter()) return null;
    const object = new JsonValue();
    object.kind = JsonKind.Object;
    object.items = [];
    object.keys = [];
    this.skipWhitespace();
    if (this.peek() == 0x7d) { this.pos++; this.depth--; return object; }
    while (true) {
      this.skipWhitespace();
      if (this.peek() != 0x22) return this.fail(message("expected a member name"));
      const key = this.parseString();
      if (key === null) return null;
      if (object.member(key) !== null) return this.fail(message("duplicate member name"));
      this.skipWhitespace();
      if (this.peek() != 0x3a) return this.fail(message("expected ':'"));
      this.pos++;
      const value = this.parseValue();
      if (value === null) return null;
      object.keys.push(key);
      object.items.push(value);
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c == 0x7d) break;
      if (c != 0x2c) { this.pos--; return this.fail(message("expected ',' or '}'")); }
    }
    this.depth--;
    return object;
  }

  parseArray(): JsonValue | null {
    if (!this.enter()) return null;
    const array = new JsonValue();
    array.kind = JsonKind.Array;
    array.items = [];
    this.skipWhitespace();
    if (this.peek() == 0x5d) { this.pos++; this.depth--; return array; }
    while (true) {
      const value = this.parseValue();
      if (value === null) return null;
      array.items.push(value);
      this.skipWhitespace();
      const c = this.peek();
      this.pos++;
      if (c == 0x5d) break;
      if (c != 0x2c) { this.pos--; return this.fail(message("expected ',' or ']'")); }
    }
    this.depth--;
    return array;
  }

  parseString(): string | null {
    this.pos++; // opening quote
    let out = "";
    let runStart = this.pos;
    while (true) {
      const c = this.peek();
      if (c < 0) { this.fail(message("unterminated string")); return null; }
      if (c == 0x22) break;
      if (c < 0x20) { this.fail(message("control character in string")); return null; }
      if (c != 0x5c) { this.pos++; continue; }
      out += this.src.substring(runStart, this.pos);
      const escaped = this.parseEscape();
      if (escaped < 0) return null;
      out += String.fromCharCode(escaped);
      runStart = this.pos;
    }
    out += this.src.substring(runStart, this.pos);
    this.pos++; // closing quote
    return out;
  }

  /** Parses one escape after the backslash; returns the UTF-16 code unit, or -1 on error. */
  parseEscape(): i32 {
    const c = this.src.charCodeAt(++this.pos);
    this.pos++;
    switch (c) {
      case 0x22: return 0x22;
      case 0x5c: return 0x5c;
      case 0x2f: return 0x2f;
      case 0x62: return 0x08;
      case 0x66: return 0x0c;
      case 0x6e: return 0x0a;
      case 0x72: return 0x0d;
      case 0x74: return 0x09;
      case 0x75: {
        let unit = 0;
        for (let i = 0; i < 4; i++) {
          const digit = hexValue(this.peek());
          if (digit < 0) { this.fail(message("invalid \\u escape")); return -1; }
          unit = (unit << 4) | digit;
          this.pos++;
        }
        return unit;
      }
    }
    this.fail(message("invalid escape"));
    return -1;
  }

  /** Validates the JSON number grammar and computes its value without the std's large strtod. */
  parseNumber(): JsonValue | null {
    let negative = false;
    if (this.peek() == 0x2d) { negative = true; this.pos++; }
    let mantissa: f64 = 0;
    let exponent: i32 = 0;
    if (this.peek() == 0x30) {
      this.pos++;
    } else {
      const start = this.pos;
      mantissa = this.digits(mantissa);
      if (this.pos == start) return this.invalidNumber();
    }
    if (this.peek() == 0x2e) {
      this.pos++;
      const start = this.pos;
      mantissa = this.digits(mantissa);
      if (this.pos == start) return this.invalidNumber();
      exponent -= this.pos - start;
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.peek();
      if (sign == 0x2b || sign == 0x2d) this.pos++;
      const start = this.pos;
      const written = this.digits(0);
      if (this.pos == start) return this.invalidNumber();
      const magnitude = written > 400 ? 400 : <i32>written;
      exponent += sign == 0x2d ? -magnitude : magnitude;
    }
    const value = new JsonValue();
    value.kind = JsonKind.Number;
    const scaled = scaleByPowerOfTen(mantissa, exponent);
    value.number = negative ? -scaled : scaled;
    return value;
  }

  /** Consumes decimal digits, accumulating them onto `value`. */
  digits(value: f64): f64 {
    let c = this.peek();
    while (c >= 0x30 && c <= 0x39) {
      value = value * 10 + <f64>(c - 0x30);
      c = this.src.charCodeAt(++this.pos);
    }
    return value;
  }
}

/** mantissa × 10^exponent by repeated steps: exact enough for configuration and expiry values. */
function scaleByPowerOfTen(mantissa: f64, exponent: i32): f64 {
  let value = mantissa;
  for (let i = 0; i < exponent && value != Infinity; i++) value *= 10;
  for (let i = 0; i > exponent && value != 0; i--) value /= 10;
  return value;
}

function literal(kind: JsonKind, boolean: bool): JsonValue {
  const value = new JsonValue();
  value.kind = kind;
  value.boolean = boolean;
  return value;
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Parses a whole JSON text; trailing non-whitespace is an error. */
export function parseJson(text: string): JsonResult {
  const parser = new Parser(text);
  const value = parser.parseValue();
  if (value === null) return new JsonResult(null, parser.error);
  parser.skipWhitespace();
  if (parser.pos < text.length) {
    parser.fail(message("unexpected data after the JSON value"));
    return new JsonResult(null, parser.error);
  }
  return new JsonResult(value, "");
}
