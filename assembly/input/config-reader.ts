// Reads the plugin configuration's JSON values, collecting the first error: every reader returns
// a usable default so that parsing goes on and Envoy is told the first problem.
import { JsonKind, JsonValue } from "../util/json";

export class Reader {
  error: string = "";

  fail(field: string, problem: string): void {
    if (this.error.length == 0) this.error = "field '" + field + "' " + problem;
  }

  string(value: JsonValue | null, field: string, fallback: string, nonEmpty: bool = true): string {
    if (value === null) return fallback;
    if (value.kind != JsonKind.String || (nonEmpty && value.text.length == 0)) {
      this.fail(field, "must be a non-empty string");
      return fallback;
    }
    return value.text;
  }

  integer(value: JsonValue | null, field: string, fallback: i64, min: i64, max: i64): i64 {
    if (value === null) return fallback;
    if (!value.isInteger() || <i64>value.number < min || <i64>value.number > max) {
      this.fail(field, "must be an integer from " + min.toString() + " to " + max.toString());
      return fallback;
    }
    return <i64>value.number;
  }

  strings(value: JsonValue | null, field: string): string[] {
    const out = new Array<string>();
    if (value === null) return out;
    if (value.kind != JsonKind.Array) {
      this.fail(field, "must be an array of strings");
      return out;
    }
    for (let i = 0; i < value.items.length; i++) {
      const item = value.items[i];
      if (item.kind != JsonKind.String || item.text.length == 0) {
        this.fail(field + "[" + i.toString() + "]", "must be a non-empty string");
        return out;
      }
      out.push(item.text);
    }
    return out;
  }
}
