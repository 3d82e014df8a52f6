// The token usage in a provider's answer, read as the answer streams past: one JSON document, or an
// SSE stream of them (one per data: line). The answer itself is never buffered or changed: a small
// state machine follows strings and nesting byte by byte, and only a "usage" object where the
// providers put it is copied out (at most MAX_USAGE_BYTES) and parsed:
//   {"usage": {...}}                              chat, completions, embeddings, messages, responses
//   {"response": {"usage": {...}}}                Responses API stream: response.completed
//   {"message": {"usage": {...}}}                 Anthropic stream: message_start
// Deeper "usage" keys are not usage: the Responses API echoes the caller's tools, schemas and
// prompt variables, where an agent could plant one to understate what it spent. Fields seen later
// replace earlier ones (Anthropic's message_delta carries the cumulative output count), so a
// stream cut off anywhere still reports everything that arrived before the cut.
import { JsonKind, JsonValue, parseJson } from "../util/json";

const MAX_USAGE_BYTES = 2048;
/** Longer member names are never the ones looked for. */
const MAX_KEY_BYTES = 16;
/** A count above this is not a token count: the field is ignored. */
const MAX_COUNT: f64 = 1e12;
/** Nor is a sum of counts above it. */
const MAX_TOTAL: i64 = 1_000_000_000_000;
const DATA_PREFIX = "data:";

/** The counts the providers report, as reported (-1: not seen). */
export class Usage {
  promptTokens: i64 = -1;
  completionTokens: i64 = -1;
  inputTokens: i64 = -1;
  outputTokens: i64 = -1;
  /** OpenAI's prompt_tokens_details / input_tokens_details cached_tokens (part of the input count). */
  cachedTokens: i64 = -1;
  /** Anthropic's cache counts (not part of input_tokens). */
  cacheReadTokens: i64 = -1;
  cacheWriteTokens: i64 = -1;

  get seen(): bool {
    return this.promptTokens >= 0 || this.completionTokens >= 0 || this.inputTokens >= 0 || this.outputTokens >= 0;
  }
}

/** Usage in one shape for every provider: input counts every input token, cached and written ones included. */
export class TokenCounts {
  constructor(public input: i64, public cachedInput: i64, public cacheWrite: i64, public output: i64) {}

  get total(): i64 {
    return this.input + this.output;
  }
}

/** `anthropic`: its input_tokens leaves out cache reads and writes; OpenAI's counts include cached tokens. */
export function countsOf(usage: Usage, anthropic: bool): TokenCounts {
  const output = max<i64>(0, usage.completionTokens >= 0 ? usage.completionTokens : usage.outputTokens);
  if (anthropic) {
    const read = max<i64>(0, usage.cacheReadTokens);
    const write = max<i64>(0, usage.cacheWriteTokens);
    return new TokenCounts(min<i64>(MAX_TOTAL, max<i64>(0, usage.inputTokens) + read + write), read, write, output);
  }
  const input = max<i64>(0, usage.promptTokens >= 0 ? usage.promptTokens : usage.inputTokens);
  return new TokenCounts(input, min<i64>(input, max<i64>(0, usage.cachedTokens)), 0, output);
}

export class UsageScanner {
  readonly usage: Usage = new Usage();
  /** Usage objects too large, or not JSON: what they said is not counted. */
  unreadable: i32 = 0;

  // SSE: where this line stands.
  private atLineStart: bool = true;
  private prefixMatched: i32 = 0;
  private inData: bool = false;

  // JSON: strings, nesting, the member name just read, and whether it names usage where usage is.
  private depth: i32 = 0;
  private inString: bool = false;
  private escaped: bool = false;
  private key: Uint8Array = new Uint8Array(MAX_KEY_BYTES);
  private keyLength: i32 = 0;
  private usageNext: bool = false;
  private underUsageParent: bool = false;

  // The usage object being copied: from its "{" until nesting returns to captureDepth.
  private capture: Uint8Array = new Uint8Array(MAX_USAGE_BYTES);
  private captured: i32 = 0;
  private captureDepth: i32 = -1;

  constructor(private readonly sse: bool) {}

  feed(data: ArrayBuffer): void {
    const base = changetype<usize>(data);
    const size = data.byteLength;
    for (let i = 0; i < size; i++) {
      const c = <i32>load<u8>(base + <usize>i);
      if (this.sse) this.sseByte(c);
      else this.jsonByte(c);
    }
  }

  private sseByte(c: i32): void {
    if (c == 0x0a || c == 0x0d) {
      this.atLineStart = true;
      return;
    }
    if (this.atLineStart) {
      this.atLineStart = false;
      this.prefixMatched = 0;
      this.inData = false;
      this.resetDocument();
    }
    if (this.inData) {
      this.jsonByte(c);
    } else if (this.prefixMatched >= 0) {
      // Other fields (event:, id:, retry:) and comments (":") are skipped to the end of their line.
      this.prefixMatched = c == DATA_PREFIX.charCodeAt(this.prefixMatched) ? this.prefixMatched + 1 : -1;
      if (this.prefixMatched == DATA_PREFIX.length) this.inData = true;
    }
  }

  /** Each data: line is a document of its own; an unfinished one is dropped. */
  private resetDocument(): void {
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.usageNext = false;
    this.underUsageParent = false;
    this.captureDepth = -1;
  }

  private jsonByte(c: i32): void {
    if (this.captureDepth >= 0) this.copy(c);
    if (this.inString) {
      this.stringByte(c);
      return;
    }
    if (c == 0x22) { // "
      this.inString = true;
      this.keyLength = 0;
    } else if (c == 0x3a) { // :
      this.memberName();
    } else if (c == 0x7b) { // {
      if (this.usageNext && (this.depth == 1 || (this.depth == 2 && this.underUsageParent)) && this.captureDepth < 0) this.startCapture();
      this.usageNext = false;
      this.depth++;
    } else if (c == 0x5b) { // [
      this.usageNext = false;
      this.depth++;
    } else if (c == 0x7d || c == 0x5d) { // } ]
      if (this.depth > 0) this.depth--;
      if (this.captureDepth >= 0 && this.depth == this.captureDepth) this.finishCapture();
    } else if (!isJsonWhitespace(c)) {
      this.usageNext = false;
    }
  }

  private stringByte(c: i32): void {
    if (this.escaped) {
      this.escaped = false;
    } else if (c == 0x5c) { // backslash
      this.escaped = true;
    } else if (c == 0x22) {
      this.inString = false;
      return;
    }
    if (this.keyLength < MAX_KEY_BYTES) this.key[this.keyLength] = <u8>c;
    this.keyLength++;
  }

  /** The string just read is a member's name: is it usage, or (at the top) a member that holds usage? */
  private memberName(): void {
    this.usageNext = this.keyIs("usage");
    if (this.depth == 1) this.underUsageParent = this.keyIs("response") || this.keyIs("message");
  }

  private keyIs(name: string): bool {
    if (this.keyLength != name.length) return false;
    for (let i = 0; i < name.length; i++) if (<i32>this.key[i] != name.charCodeAt(i)) return false;
    return true;
  }

  private startCapture(): void {
    this.captureDepth = this.depth;
    this.captured = 0;
    this.copy(0x7b);
  }

  private copy(c: i32): void {
    if (this.captured >= MAX_USAGE_BYTES) {
      this.captureDepth = -1;
      this.unreadable++;
      return;
    }
    this.capture[this.captured++] = <u8>c;
  }

  private finishCapture(): void {
    this.captureDepth = -1;
    const text = String.UTF8.decodeUnsafe(this.capture.dataStart, <usize>this.captured);
    const parsed = parseJson(text);
    const value = parsed.value;
    if (value === null || value.kind != JsonKind.Object) {
      this.unreadable++;
      return;
    }
    const usage = this.usage;
    usage.promptTokens = count(value.member("prompt_tokens"), usage.promptTokens);
    usage.completionTokens = count(value.member("completion_tokens"), usage.completionTokens);
    usage.inputTokens = count(value.member("input_tokens"), usage.inputTokens);
    usage.outputTokens = count(value.member("output_tokens"), usage.outputTokens);
    usage.cacheReadTokens = count(value.member("cache_read_input_tokens"), usage.cacheReadTokens);
    usage.cacheWriteTokens = count(value.member("cache_creation_input_tokens"), usage.cacheWriteTokens);
    usage.cachedTokens = count(detail(value, "prompt_tokens_details"), usage.cachedTokens);
    usage.cachedTokens = count(detail(value, "input_tokens_details"), usage.cachedTokens);
  }
}

/** Space, tab, line feed, carriage return (RFC 8259): a pretty-printed body breaks lines anywhere. */
function isJsonWhitespace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function detail(usage: JsonValue, name: string): JsonValue | null {
  const details = usage.member(name);
  return details !== null && details.kind == JsonKind.Object ? details.member("cached_tokens") : null;
}

/** A whole, non-negative, plausible count replaces `previous`; anything else leaves it. */
function count(value: JsonValue | null, previous: i64): i64 {
  if (value === null || !value.isInteger() || value.number < 0 || value.number > MAX_COUNT) return previous;
  return <i64>value.number;
}
