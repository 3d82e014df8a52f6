// Property tests: any key in the seeds' grammar with any value round-trips byte for byte,
// and any key outside it is refused with 400 before Valkey is touched.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expectErrorBody, useStandaloneBridge } from "./helpers.ts";

const chars = (alphabet: string, min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength: min, maxLength: max });
const LOWER = "abcdefghijklmnopqrstuvwxyz0123456789";
const PATH = LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ._/-";

/** cred:spiffe://{td}/{path}:{service}:{region}, within 512 bytes. */
const validKey = fc
  .record({
    trustDomain: chars(LOWER + "._-", 1, 40),
    path: chars(PATH, 1, 120),
    service: chars(LOWER + "_", 1, 30),
    region: chars(LOWER + "-", 1, 32),
  })
  .map(({ trustDomain, path, service, region }) => `cred:spiffe://${trustDomain}/${path}:${service}:${region}`);

const value = fc.uint8Array({ minLength: 0, maxLength: 16 * 1024 });

/** A valid key with one character that the grammar forbids at that position. */
const corruptedKey = fc
  .tuple(validKey, fc.nat(), fc.constantFrom(" ", "*", "?", "[", "\\", "\n", "\0", "é", "💥", "%", "#", "\"", "{"))
  .map(([key, at, bad]) => {
    const position = 14 + (at % (key.length - 14)); // after "cred:spiffe://"
    return key.slice(0, position) + bad + key.slice(position);
  });

/** Arbitrary text that happens not to be a key (shrinks to small readable cases). */
const arbitraryNonKey = fc
  .string({ unit: "grapheme", maxLength: 600 })
  .filter((s) => !/^cred:spiffe:\/\/[a-z0-9._-]+\/[A-Za-z0-9._/-]+:[a-z0-9_]+:[a-z0-9-]{1,32}$/.test(s) || s.length > 512);

describe("bridge properties", () => {
  const env = useStandaloneBridge();


  it("round-trips any valid key and value, stored encrypted", async () => {
    await fc.assert(
      fc.asyncProperty(validKey, value, async (key, bytes) => {
        expect((await env.bridge.api.put(key, bytes)).status).toBe(204);
        const reply = await env.bridge.api.get(key);
        expect(reply.status).toBe(200);
        expect(reply.body.equals(Buffer.from(bytes))).toBe(true);
        const stored = (await env.raw.getBuffer(key))!;
        expect(stored.length).toBe(29 + bytes.length);
        if (bytes.length >= 8) expect(stored.includes(Buffer.from(bytes))).toBe(false);
        expect((await env.bridge.api.delete(key)).status).toBe(204);
        expect((await env.bridge.api.get(key)).status).toBe(404);
      }),
      { numRuns: 150 },
    );
  });

  it("refuses any key with a forbidden character, on every method, writing nothing", async () => {
    await fc.assert(
      fc.asyncProperty(corruptedKey, async (key) => {
        expectErrorBody(await env.bridge.api.get(key), "BadRequest");
        expectErrorBody(await env.bridge.api.put(key, "v"), "BadRequest");
        expectErrorBody(await env.bridge.api.lock(`lock:${key}`, "v"), "BadRequest");
        expectErrorBody(await env.bridge.api.delete(key), "BadRequest");
      }),
      { numRuns: 150 },
    );
    expect(await env.raw.dbsize()).toBe(0);
  });

  it("refuses arbitrary non-key strings", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryNonKey, async (key) => {
        expectErrorBody(await env.bridge.api.put(key, "v"), "BadRequest");
      }),
      { numRuns: 200 },
    );
    expect(await env.raw.dbsize()).toBe(0);
  });
});
