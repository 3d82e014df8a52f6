// The exchange filter's size budget (README, benchmark targets: release .wasm ≤ 64 KiB). A sidecar
// pulls the module into every pod and V8 compiles it on every worker, so growth is paid per pod; this
// fails the build that crosses the budget, instead of leaving it to the next benchmark run.
// The fixed texts stay small only through scripts/utf8-messages.mjs (message("...") as UTF-8), so
// the check also fails if that transform stops being applied.
import { readFileSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WASM_PATH } from "./support/exchange.ts";

const BUDGET_BYTES = 64 * 1024;

describe("the release exchange filter", () => {
  it(`is at most ${BUDGET_BYTES} bytes`, () => {
    expect(statSync(WASM_PATH).size).toBeLessThanOrEqual(BUDGET_BYTES);
  });

  it("stores its fixed texts as UTF-8, not as UTF-16 string literals", () => {
    const module = readFileSync(WASM_PATH);
    const text = "the credential exchange was denied by policy"; // filter/errors.ts, in message() only
    expect(module.includes(Buffer.from(text, "utf8")), "the UTF-8 text is in the module").toBe(true);
    expect(module.includes(Buffer.from(text, "utf16le")), "the UTF-16 literal is not").toBe(false);
  });
});
