// `npm run token` = tsx scripts/token.ts: only the token on stdout, errors with exit code 2.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalJWKSet, jwtVerify } from "jose";
import { projectRoot } from "../support/tools.ts";

const run = promisify(execFile);
const tsx = path.join(projectRoot, "node_modules", ".bin", "tsx");
const script = path.join(projectRoot, "scripts", "token.ts");
const AGENT = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main";
let dir: string;

beforeAll(async () => (dir = await mkdtemp(path.join(tmpdir(), "hexr-token-"))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const token = (...args: string[]) => run(tsx, [script, ...args]);

describe("scripts/token.ts", () => {
  it("prints a JWT-SVID and nothing else, with --ttl and --aud applied", async () => {
    const { stdout } = await token(AGENT, "--ttl", "120", "--aud", "my-audience", "--dir", dir);
    expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const jwks = JSON.parse(await readFile(path.join(dir, "jwks.json"), "utf8"));
    const { payload } = await jwtVerify(stdout.trim(), createLocalJWKSet(jwks), { audience: "my-audience" });
    expect(payload.sub).toBe(AGENT);
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it.each([
    [[], "exactly one SPIFFE ID is required"],
    [["not-a-spiffe-id"], 'not a valid SPIFFE ID: "not-a-spiffe-id"'],
    [[AGENT, "--ttl", "soon"], "--ttl must be a positive whole number of seconds, not soon"],
    [[AGENT, "--colour", "red"], "Unknown option '--colour'"],
  ])("exits 2 with a message for %j", async (args, message) => {
    const failure = await token(...args, "--dir", dir).catch((error) => error);
    expect(failure.code).toBe(2);
    expect(failure.stdout).toBe("");
    expect(failure.stderr).toContain(message);
    expect(failure.stderr).toContain("usage: npm run token --");
  });
});
