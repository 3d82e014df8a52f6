// Reads the plugin configuration's JSON values, collecting the first error: every reader returns
// a usable default so that parsing goes on and Envoy is told the first problem.
import { decimal } from "../util/ascii";
import { JsonKind, JsonValue } from "../util/json";
import { message } from "../util/message";

/** The name of the item at `index` of the array `field`: "field[index]". */
export function itemName(field: string, index: i32): string {
  return field + "[" + decimal(index) + "]";
}

/** The problem of a string, or of an array's item, that is not one (written once). */
function mustBeNonEmptyString(): string {
  return message("must be a non-empty string");
}

export class Reader {
  error: string = "";
  /**
   * The section whose fields are being read, as their names' prefix ("revocation."), or "" at the
   * top: a section's readers name its fields as they are spelled in it.
   */
  section: string = "";
  /** The fields of `top` the readers asked for: `top` may have no other (see unknownField). */
  private asked: string[] = [];

  /** `top`: the object whose every field some reader must ask for (the configuration, a section). */
  constructor(private readonly top: JsonValue) {}

  /** `object`'s field `name`, or null when absent. */
  member(object: JsonValue, name: string): JsonValue | null {
    if (object === this.top) this.asked.push(name);
    return object.member(name);
  }

  /** The first field of `top` that no reader asked for (read them all first), or null. */
  unknownField(): string | null {
    const keys = this.top.keys;
    for (let i = 0; i < keys.length; i++) if (!this.asked.includes(keys[i])) return keys[i];
    return null;
  }

  fail(field: string, problem: string): void {
    if (this.error.length == 0) this.error = message("field '") + this.section + field + "' " + problem;
  }

  // A field of `object`, found and named in errors by `name`: read as string(), integer(), strings().

  stringField(object: JsonValue, name: string, fallback: string): string {
    return this.string(this.member(object, name), name, fallback);
  }

  integerField(object: JsonValue, name: string, fallback: i64, min: i64, max: i64): i64 {
    return this.integer(this.member(object, name), name, fallback, min, max);
  }

  stringsField(object: JsonValue, name: string): string[] {
    return this.strings(this.member(object, name), name);
  }

  string(value: JsonValue | null, field: string, fallback: string, nonEmpty: bool = true): string {
    if (value === null) return fallback;
    if (value.kind != JsonKind.String || (nonEmpty && value.text.length == 0)) {
      this.fail(field, mustBeNonEmptyString());
      return fallback;
    }
    return value.text;
  }

  integer(value: JsonValue | null, field: string, fallback: i64, min: i64, max: i64): i64 {
    if (value === null) return fallback;
    if (!value.isInteger() || <i64>value.number < min || <i64>value.number > max) {
      this.fail(field, message("must be an integer from ") + decimal(min) + " to " + decimal(max));
      return fallback;
    }
    return <i64>value.number;
  }

  strings(value: JsonValue | null, field: string): string[] {
    const out = new Array<string>();
    if (value === null) return out;
    if (value.kind != JsonKind.Array) {
      this.fail(field, message("must be an array of strings"));
      return out;
    }
    for (let i = 0; i < value.items.length; i++) {
      const item = value.items[i];
      if (item.kind != JsonKind.String || item.text.length == 0) {
        this.fail(itemName(field, i), mustBeNonEmptyString());
        return out;
      }
      out.push(item.text);
    }
    return out;
  }
}
