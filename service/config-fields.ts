// Typed access to one JSON object of a service's configuration file (the injector's, the vault's),
// with errors that name the field: a mistake stops the service at start-up with a message such as
// "vault config: store.path is required" instead of failing a request later.
import { readFileSync } from "node:fs";
import path from "node:path";

/** Makes the service's own error for `field` (e.g. "jwt.audience") and what is wrong with it. */
export type FieldError = (field: string, problem: string) => Error;

/** A configuration file's JSON, or the service's error naming the file. */
export function readConfigJson(file: string, fail: FieldError): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw fail(file, `is not readable JSON: ${(error as Error).message}`);
  }
}

export class Fields {
  private readonly object: Record<string, unknown>;
  private readonly read = new Set<string>();

  constructor(value: unknown, private readonly prefix: string, private readonly baseDir: string, private readonly fail: FieldError) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw fail(prefix || "the configuration", "must be a JSON object");
    }
    this.object = value as Record<string, unknown>;
  }

  name(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  has(key: string): boolean {
    this.read.add(key);
    return this.object[key] !== undefined && this.object[key] !== null;
  }

  keys(): string[] {
    return Object.keys(this.object);
  }

  raw(key: string): unknown {
    this.read.add(key);
    return this.object[key];
  }

  child(value: unknown, name: string): Fields {
    return new Fields(value, name, this.baseDir, this.fail);
  }

  /** A nested object; `required` ones must be present, others default to {}. */
  section(key: string, required = false): Fields {
    if (!this.has(key) && required) throw this.fail(this.name(key), "is required");
    return this.child(this.has(key) ? this.object[key] : {}, this.name(key));
  }

  /** Refuses the fields nobody read (a misspelt one must not leave a default the operator did not mean); `$comment`s excepted. */
  done(readme: string): void {
    const unknown = Object.keys(this.object).filter((key) => !this.read.has(key) && !key.startsWith("$"));
    if (unknown.length > 0) throw this.fail(this.name(unknown[0]), `is not a known field (see ${readme})`);
  }

  /** The value of `key` if `check` accepts it; `fallback` when absent (undefined: required). */
  value<T>(key: string, fallback: T | undefined, check: (value: unknown) => boolean, expected: string): T {
    if (!this.has(key)) {
      if (fallback === undefined) throw this.fail(this.name(key), "is required");
      return fallback;
    }
    const value = this.object[key];
    if (!check(value)) throw this.fail(this.name(key), `must be ${expected}`);
    return value as T;
  }

  /** An error about `key`, in the service's words. */
  error(key: string, problem: string): Error {
    return this.fail(this.name(key), problem);
  }

  string(key: string, fallback?: string): string {
    return this.value(key, fallback, (v) => typeof v === "string" && v.length > 0, "a non-empty string");
  }

  boolean(key: string, fallback?: boolean): boolean {
    return this.value(key, fallback, (v) => typeof v === "boolean", "true or false");
  }

  integer(key: string, fallback: number | undefined, min: number, max: number): number {
    return this.value(key, fallback, (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max, `an integer from ${min} to ${max}`);
  }

  oneOf(key: string, choices: string[], fallback?: string): string {
    return this.value(key, fallback, (v) => choices.includes(v as string), `one of ${choices.join(", ")}`);
  }

  url(key: string, fallback?: string): string {
    return this.value(key, fallback, (v) => typeof v === "string" && /^https?:\/\/[^\s]+$/.test(v) && URL.canParse(v), "an http(s) URL").replace(/\/+$/, "");
  }

  /** An https URL without query or fragment, trailing slashes removed: what the clouds accept as an OIDC issuer or JWKS URL. */
  httpsUrl(key: string, fallback?: string): string {
    const valid = (v: unknown) => typeof v === "string" && /^https:\/\/[^\s?#]+$/.test(v) && URL.canParse(v) && new URL(v).hostname !== "";
    return this.value(key, fallback, valid, "an https URL without query or fragment").replace(/\/+$/, "");
  }

  /** A file path, resolved against the config file's directory. */
  file(key: string): string {
    return path.resolve(this.baseDir, this.string(key));
  }

  list(key: string, fallback?: unknown[]): unknown[] {
    return this.value(key, fallback, Array.isArray, "a list");
  }

  stringList(key: string, fallback?: string[], valid: (item: string) => boolean = () => true): string[] {
    const list = this.list(key, fallback);
    list.forEach((item, index) => {
      if (typeof item !== "string" || !valid(item)) throw this.fail(`${this.name(key)}[${index}]`, `is not valid: ${JSON.stringify(item)}`);
    });
    return list as string[];
  }

  stringOrList(key: string, fallback?: string[]): string[] {
    return typeof this.object[key] === "string" ? [this.string(key)] : this.stringList(key, fallback);
  }

  stringMap(key: string, validKey: (key: string) => boolean, validValue: (value: string) => boolean = () => true): Record<string, string> {
    const map = this.value<Record<string, unknown>>(key, {}, (v) => typeof v === "object" && !Array.isArray(v), "an object");
    for (const [entry, value] of Object.entries(map)) {
      if (!validKey(entry) || typeof value !== "string" || value.length === 0 || !validValue(value)) {
        throw this.fail(`${this.name(key)}["${entry}"]`, "is not valid");
      }
    }
    return map as Record<string, string>;
  }
}
