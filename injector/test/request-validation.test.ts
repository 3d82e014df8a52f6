// Every malformed request gets the JSON error contract with the right status, before any policy
// query or cloud call (this injector's OPA address has nothing listening, so a request that got
// that far would come back 503 instead).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../support/processes.ts";
import {
  ANALYST_ID, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type RequestSpec, type TestIdentity,
} from "./helpers.ts";

let identity: TestIdentity;
let injector: CapturedInjector;
let tls: ClientTls;
let headers: Record<string, string>;

beforeAll(async () => {
  identity = await testIdentity();
  injector = await startCaptured({ ...baseConfig(identity, `http://127.0.0.1:${await freePort()}`), extra_services: ["aws_kinesis"] });
  tls = await sidecarTls(identity);
  headers = filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID));
});

afterAll(async () => {
  await injector?.close();
  await identity?.remove();
});

function request(spec: RequestSpec) {
  return send(injector.url, { tls, headers, ...spec });
}

async function expectError(spec: RequestSpec, status: number, message: string) {
  const reply = await request(spec);
  expect(reply.status).toBe(status);
  expect(reply.headers["content-type"]).toBe("application/json");
  expect(reply.json).toEqual({ error: { type: "BadRequest", message } });
  return reply;
}

describe("malformed bodies → 400", () => {
  it.each([
    ["an empty body", "", "the body must be a JSON object"],
    ["text that is not JSON", "service=aws_s3", "the body is not valid JSON"],
    ["truncated JSON", '{"service":"aws_s3"', "the body is not valid JSON"],
    ["a JSON array", '["aws_s3"]', "the body must be a JSON object"],
    ["a JSON string", '"aws_s3"', "the body must be a JSON object"],
    ["JSON null", "null", "the body must be a JSON object"],
    ["no service", '{"region":"us-east-1"}', '"service" is required and must be a string'],
    ["a numeric service", '{"service":42}', '"service" is required and must be a string'],
    ["an unknown service", '{"service":"aws_s4"}', 'unknown service "aws_s4"'],
    ["a service with a scope suffix", '{"service":"aws_s3:read"}', 'unknown service "aws_s3:read"'],
    ["a numeric region", '{"service":"aws_s3","region":7}', '"region" must be a string'],
    ["a region with a colon", '{"service":"aws_s3","region":"us-east-1:x"}', "region must match ^[a-z0-9-]{1,32}$"],
    ["an upper-case region", '{"service":"aws_s3","region":"US-EAST-1"}', "region must match ^[a-z0-9-]{1,32}$"],
    ["an empty region", '{"service":"aws_s3","region":""}', "region must match ^[a-z0-9-]{1,32}$"],
    ["a 33-character region", JSON.stringify({ service: "aws_s3", region: "a".repeat(33) }), "region must match ^[a-z0-9-]{1,32}$"],
  ])("rejects %s", async (_, body, message) => {
    await expectError({ body }, 400, message);
  });

  it("rejects a body whose service differs from x-hexr-service, and a bad x-hexr-region", async () => {
    await expectError({ body: '{"service":"aws_s3"}', headers: { ...headers, "x-hexr-service": "aws_ec2" } }, 400, "x-hexr-service does not match the body's service");
    await expectError({ body: '{"service":"aws_s3"}', headers: { ...headers, "x-hexr-region": "Mars" } }, 400, "region must match ^[a-z0-9-]{1,32}$");
  });

  it("knows the configured extra services (they get as far as the policy query)", async () => {
    expect((await request({ body: '{"service":"aws_kinesis"}' })).status).toBe(503);
    expect((await request({ body: '{"service":"aws_firehose"}' })).status).toBe(400);
  });
});

describe("framing", () => {
  it("answers 405 with allow: POST for other methods", async () => {
    const reply = await expectError({ method: "GET" }, 405, "use POST for /exchange");
    expect(reply.headers.allow).toBe("POST");
  });

  it("answers 415 for a body that is not declared JSON", async () => {
    await expectError({ body: '{"service":"aws_s3"}', headers: { ...headers, "content-type": "text/plain" } }, 415, "content-type must be application/json");
    const { "content-type": _, ...untyped } = headers;
    await expectError({ body: '{"service":"aws_s3"}', headers: untyped }, 415, "content-type must be application/json");
  });

  it("accepts content-type parameters", async () => {
    const reply = await request({ body: '{"service":"aws_s3"}', headers: { ...headers, "content-type": "application/json; charset=utf-8" } });
    expect(reply.status).toBe(503); // got past framing and validation to the (absent) policy engine
  });

  it("answers 413 for a body over 4 KiB, declared or streamed", async () => {
    const big = JSON.stringify({ service: "aws_s3", padding: "x".repeat(5000) });
    await expectError({ body: big }, 413, "the body is larger than 4096 bytes");
    await expectError({ body: big, headers: { ...headers, "transfer-encoding": "chunked" } }, 413, "the body is larger than 4096 bytes");
  });

  it("answers 404 in the JSON contract for any other path, and 200 on /healthz", async () => {
    const reply = await request({ path: "/credentials", body: "{}" });
    expect(reply.status).toBe(404);
    expect(reply.json).toEqual({ error: { type: "BadRequest", message: "no such endpoint: use POST /exchange" } });
    const health = await request({ method: "GET", path: "/healthz" });
    expect(health.json).toEqual({ status: "ok" });
  });

  it("checks authentication before looking at the body", async () => {
    const { authorization: _, ...anonymous } = headers;
    const reply = await request({ body: "not json", headers: anonymous });
    expect(reply.status).toBe(401);
  });
});
