// hexrAgent(): the agent context (AsyncLocalStorage), the marker file, and `resources` enforced
// before any network call.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { currentAgent, hexrAgent } from "../src/agent.ts";
import { HexrClient } from "../src/client.ts";
import { CredentialError, HexrError } from "../src/errors.ts";
import { hexrTool } from "../src/tool.ts";
import { awsCredentials } from "../src/credentials.ts";
import { RESEARCHER, fixedIdentity, startFakeSidecar, tempDir, unsignedJwt, type FakeSidecar } from "./helpers.ts";

let sidecar: FakeSidecar;
let client: HexrClient;
const contextDir = tempDir("context");

beforeAll(async () => {
  sidecar = await startFakeSidecar();
  client = new HexrClient({ sidecarUrl: sidecar.url, identity: fixedIdentity(() => unsignedJwt(RESEARCHER)) });
  vi.stubEnv("HEXR_CONTEXT_DIR", contextDir);
});
afterAll(async () => {
  client.close();
  await sidecar.close();
  vi.unstubAllEnvs();
});
afterEach(() => {
  sidecar.requests.length = 0;
});

describe("hexrAgent", () => {
  it("writes {HEXR_CONTEXT_DIR}/{agent}-{role}.json with who the process is, and no secret", async () => {
    const run = hexrAgent({ name: "content-crew", tenant: "acme-corp", role: "researcher", framework: "crewai", resources: ["gcp_bigquery:read"] }, async (x: number) => {
      return { x, agent: currentAgent() };
    });
    const { x, agent } = await run(7);
    expect(x).toBe(7);
    expect(agent).toMatchObject({ name: "content-crew", tenant: "acme-corp", role: "researcher", framework: "crewai" });
    const file = path.join(contextDir, "content-crew-researcher.json");
    expect(agent?.markerFile).toBe(file);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({
      agent_name: "content-crew", process_role: "researcher", tenant: "acme-corp", framework: "crewai", pid: process.pid, resources: ["gcp_bigquery:read"],
    });
    expect(readdirSync(contextDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("defaults the role to HEXR_PROCESS_ROLE, then main, and the framework to custom", async () => {
    await hexrAgent({ name: "data-pipeline", tenant: "acme-corp" }, () => undefined)();
    expect(JSON.parse(readFileSync(path.join(contextDir, "data-pipeline-main.json"), "utf8"))).toMatchObject({ process_role: "main", framework: "custom", resources: null });
    vi.stubEnv("HEXR_PROCESS_ROLE", "writer");
    await hexrAgent({ name: "content-crew", tenant: "acme-corp" }, () => undefined)();
    expect(existsSync(path.join(contextDir, "content-crew-writer.json"))).toBe(true);
    vi.stubEnv("HEXR_PROCESS_ROLE", "");
  });

  it("keeps each agent's context across awaits, concurrently", async () => {
    const a = hexrAgent({ name: "a", tenant: "t" }, async () => {
      await new Promise((r) => setTimeout(r, 20));
      return currentAgent()?.name;
    });
    const b = hexrAgent({ name: "b", tenant: "t" }, async () => {
      await new Promise((r) => setTimeout(r, 5));
      return currentAgent()?.name;
    });
    expect(await Promise.all([a(), b(), a()])).toEqual(["a", "b", "a"]);
    expect(currentAgent()).toBeUndefined();
  });

  it("refuses names that are not SPIFFE path segments", () => {
    expect(() => hexrAgent({ name: "../etc", tenant: "acme-corp" }, () => 1)).toThrow(HexrError);
    expect(() => hexrAgent({ name: "ok", tenant: "a/b" }, () => 1)).toThrow(HexrError);
  });
});

describe("resources", () => {
  const agent = hexrAgent({ name: "read-only-agent", tenant: "acme-corp", resources: ["aws_s3:read"] }, async (service: string) => hexrTool(service as "aws_s3", { client }));

  it("lets a listed service through (aws_s3:read lists aws_s3)", async () => {
    const s3 = await agent("aws_s3");
    expect(sidecar.requests.map((r) => r.service)).toEqual(["aws_s3"]);
    s3.destroy();
  });

  it("rejects an unlisted service with CredentialError 403 before any network call", async () => {
    const error = await agent("aws_ec2").catch((e) => e);
    expect(error).toBeInstanceOf(CredentialError);
    expect([error.status, error.message]).toEqual([403, "the service is not in this agent's resources"]);
    expect(sidecar.requests).toEqual([]);
    // The credential objects check too, on every call.
    const provider = awsCredentials("aws_sqs", { client });
    const inside = hexrAgent({ name: "read-only-agent", tenant: "acme-corp", resources: ["aws_s3:read"] }, () => provider());
    await expect(inside()).rejects.toBeInstanceOf(CredentialError);
    expect(sidecar.requests).toEqual([]);
  });

  it("refuses a service outside the catalog clearly", async () => {
    await expect(hexrTool("aws_kms" as "aws_s3", { client })).rejects.toThrow(/not in the catalog.*awsCredentials/);
  });
});
