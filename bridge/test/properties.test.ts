// Property tests: any credential key the contract allows with any value round-trips byte for byte,
// and any key outside it is refused with 400 before Valkey is touched.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CONTRACT, credentialKey, expandCharClass, isCredentialKey, PROVIDERS } from "../../contract/index.ts";
import { expectErrorBody, useStandaloneBridge } from "./helpers.ts";

const { grammar } = CONTRACT;
const chars = (spec: string, min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...expandCharClass(spec)), minLength: min, maxLength: max });
const segment = chars(grammar.path_segment.chars, 1, 40).filter((s) => !grammar.path_segment.forbidden!.includes(s));

/** cred:spiffe://{trust-domain}/agent/{tenant}/{agent}/{role}:{provider}_{name}:{region}, per the contract. */
const validKey = fc
  .record({
    trustDomain: chars(grammar.trust_domain.chars, 1, 40),
    tenant: segment,
    agent: segment,
    role: segment,
    provider: fc.constantFrom(...PROVIDERS),
    nameFirst: chars(grammar.service.name_first, 1, 1),
    nameRest: chars(grammar.service.name_rest, 0, grammar.service.name_max - 1),
    region: chars(grammar.region.chars, grammar.region.min, grammar.region.max),
  })
  .map((k) =>
    credentialKey(
      `spiffe://${k.trustDomain}/agent/${k.tenant}/${k.agent}/${k.role}`,
      `${k.provider}${grammar.service.separator}${k.nameFirst}${k.nameRest}`,
      k.region,
    ),
  );

const value = fc.uint8Array({ minLength: 0, maxLength: 16 * 1024 });

/** A valid key with one character that no part of a key may contain. */
const corruptedKey = fc
  .tuple(validKey, fc.nat(), fc.constantFrom(" ", "*", "?", "[", "\\", "\n", "\0", "é", "💥", "%", "#", "\"", "{"))
  .map(([key, at, bad]) => {
    const position = 14 + (at % (key.length - 14)); // after "cred:spiffe://"
    return key.slice(0, position) + bad + key.slice(position);
  });

/** Arbitrary text that happens not to be a key (shrinks to small readable cases). */
// "." and ".." are dot segments: the URL resolves /v1/cred/.. to /v1/, another route (404), before
// the bridge sees a key at all.
const arbitraryNonKey = fc.string({ unit: "grapheme", maxLength: 600 }).filter((s) => !isCredentialKey(s) && s !== "." && s !== "..");

describe("bridge properties", () => {
  const env = useStandaloneBridge();

  it("round-trips any valid key and value, stored encrypted, and locks the key", async () => {
    await fc.assert(
      fc.asyncProperty(validKey, value, async (key, bytes) => {
        expect((await env.bridge.api.put(key, bytes)).status).toBe(204);
        const reply = await env.bridge.api.get(key);
        expect(reply.status).toBe(200);
        expect(reply.body.equals(Buffer.from(bytes))).toBe(true);
        const stored = (await env.raw.getBuffer(key))!;
        expect(stored.length).toBe(29 + bytes.length);
        if (bytes.length >= 8) expect(stored.includes(Buffer.from(bytes))).toBe(false);
        expect((await env.bridge.api.lock(key)).status).toBe(201);
        expect((await env.bridge.api.unlock(key)).status).toBe(204);
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
        expectErrorBody(await env.bridge.api.lock(key, "v"), "BadRequest");
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
