// The shared vectors (contract/vectors.json) through the bridge's HTTP API against a real Valkey: the
// bridge accepts exactly the keys the contract defines, so the filter, the injector and the bridge
// can never again disagree about a key (as they once did about aws_my-svc).
import { describe, expect, it } from "vitest";
import { credentialKey, lockKey } from "../../contract/index.ts";
import { caseName, type Case, VECTORS } from "../../contract/vectors.ts";
import { expectErrorBody, useStandaloneBridge } from "./helpers.ts";

const firstValid = (cases: readonly Case[]) => cases.find((c) => c.valid)!.value;
const SPIFFE_ID = firstValid(VECTORS.spiffe_ids);
const SERVICE = firstValid(VECTORS.services);
const REGION = "us-east-1";
/** Every byte value once: the bridge must hand back exactly what it was given. */
const VALUE = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe("shared contract vectors through the bridge API (standalone Valkey)", () => {
  const env = useStandaloneBridge();

  /** Stored and read back byte for byte, its lock taken; removed again so cases that share a key stay independent. */
  const expectAccepted = async (key: string) => {
    expect((await env.bridge.api.put(key, VALUE)).status).toBe(204);
    const read = await env.bridge.api.get(key);
    expect(read.status).toBe(200);
    expect(read.body.equals(VALUE)).toBe(true);
    expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
    expect(await env.raw.exists(key, lockKey(key))).toBe(2);
    expect((await env.bridge.api.unlock(key)).status).toBe(204);
    expect((await env.bridge.api.delete(key)).status).toBe(204);
    expect(await env.raw.dbsize()).toBe(0);
  };

  /** 400 with a JSON error on every keyed route, and nothing reaches Valkey. */
  const expectRefused = async (key: string) => {
    for (const reply of [
      await env.bridge.api.get(key),
      await env.bridge.api.put(key, VALUE),
      await env.bridge.api.delete(key),
      await env.bridge.api.lock(key, "pod-a"),
    ]) {
      expect(reply.status).toBe(400);
      expectErrorBody(reply, "BadRequest");
    }
    expect(await env.raw.dbsize()).toBe(0);
  };

  const expectVerdict = (key: string, valid: boolean) => (valid ? expectAccepted(key) : expectRefused(key));

  describe("keys: stored under the key, locked under the lock key", () => {
    for (const vector of VECTORS.keys) {
      it(caseName({ value: vector.key, valid: true }), async () => {
        expect(credentialKey(vector.spiffe_id, vector.service, vector.region)).toBe(vector.key);
        expect((await env.bridge.api.put(vector.key, VALUE)).status).toBe(204);
        expect((await env.bridge.api.get(vector.key)).body.equals(VALUE)).toBe(true);
        expect((await env.bridge.api.lock(vector.key, "pod-a")).status).toBe(201);
        expect(await env.raw.get(vector.lock)).toBe("pod-a");
        expect(await env.raw.exists(vector.key)).toBe(1);
        expect((await env.bridge.api.unlock(vector.key)).status).toBe(204);
        expect((await env.bridge.api.delete(vector.key)).status).toBe(204);
        expect(await env.raw.dbsize()).toBe(0);
      });
    }
  });

  describe("invalid keys: 400 on GET, PUT and DELETE /v1/cred and PUT /v1/locks", () => {
    for (const key of VECTORS.invalid_keys) {
      it(caseName({ value: key, valid: false }), () => expectRefused(key));
    }
  });

  describe(`services, in credentialKey(${SPIFFE_ID}, service, ${REGION})`, () => {
    for (const c of VECTORS.services) {
      it(caseName(c), () => expectVerdict(credentialKey(SPIFFE_ID, c.value, REGION), c.valid));
    }

    it("accepts aws_my-svc ('-' in a service name), which the bridge's own key pattern used to refuse", async () => {
      expect(VECTORS.services.find((c) => c.value === "aws_my-svc")?.valid).toBe(true);
      await expectAccepted(credentialKey(SPIFFE_ID, "aws_my-svc", REGION));
    });
  });

  describe(`regions, in credentialKey(${SPIFFE_ID}, ${SERVICE}, region)`, () => {
    for (const c of VECTORS.regions) {
      it(caseName(c), () => expectVerdict(credentialKey(SPIFFE_ID, SERVICE, c.value), c.valid));
    }
  });

  describe(`SPIFFE IDs, in credentialKey(spiffe-id, ${SERVICE}, ${REGION})`, () => {
    for (const c of VECTORS.spiffe_ids) {
      it(caseName(c), () => expectVerdict(credentialKey(c.value, SERVICE, REGION), c.valid));
    }
  });
});
