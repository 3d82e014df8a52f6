// The shared test vectors (vectors.json), typed: every component's contract test runs all of them.
import { readFileSync } from "node:fs";
import { VECTORS_PATH } from "./index.ts";

export interface Case {
  readonly value: string;
  readonly valid: boolean;
  readonly why?: string;
}

export interface KeyCase {
  readonly spiffe_id: string;
  readonly service: string;
  readonly region: string;
  readonly key: string;
  readonly lock: string;
  readonly why?: string;
}

export interface Vectors {
  readonly services: readonly Case[];
  readonly regions: readonly Case[];
  readonly spiffe_ids: readonly Case[];
  readonly keys: readonly KeyCase[];
  readonly invalid_keys: readonly string[];
}

export const VECTORS = JSON.parse(readFileSync(VECTORS_PATH, "utf8")) as Vectors;

/** A readable test name for a case (long values shortened, control characters shown). */
export function caseName(c: Case): string {
  const shown = JSON.stringify(c.value.length > 40 ? `${c.value.slice(0, 20)}…(${c.value.length})` : c.value);
  return `${shown} is ${c.valid ? "valid" : "invalid"}${c.why ? ` (${c.why})` : ""}`;
}
