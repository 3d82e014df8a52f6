// Identity sources: the JWT-SVID file (re-read when it changes, never used past exp, no identity →
// AuthenticationError) and the SPIFFE Workload API client against a loopback gRPC server on a
// Unix socket implementing FetchJWTSVID.
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { AuthenticationError } from "../src/errors.ts";
import { FileJwtSvidSource, NoJwtSvidSource, identityFromEnvironment } from "../src/identity.ts";
import { WORKLOAD_PROTO, WorkloadApiJwtSvidSource } from "../src/workload-api.ts";
import { ANALYST, RESEARCHER, tempDir, tokenFile, unsignedJwt } from "./helpers.ts";

const dir = tempDir("identity");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.useRealTimers());

describe("the JWT-SVID file", () => {
  it("gives the token and its SPIFFE ID, and re-reads the file when it changes", async () => {
    const file = tokenFile(dir, "rotating", unsignedJwt(RESEARCHER));
    const source = new FileJwtSvidSource(file);
    expect((await source.fetchJwtSvid()).spiffeId).toBe(RESEARCHER);
    const rotated = unsignedJwt(ANALYST, 1800);
    writeFileSync(file, rotated + "\n");
    const svid = await source.fetchJwtSvid();
    expect([svid.spiffeId, svid.token]).toEqual([ANALYST, rotated]);
  });

  it("is never used past its exp", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const file = tokenFile(dir, "expiring", unsignedJwt(RESEARCHER, 60));
    const source = new FileJwtSvidSource(file);
    await source.fetchJwtSvid();
    vi.setSystemTime(Date.now() + 61_000);
    await expect(source.fetchJwtSvid()).rejects.toThrow(/has expired/);
  });

  it("no file, a missing file or garbage: AuthenticationError, with no token in it", async () => {
    await expect(new FileJwtSvidSource(path.join(dir, "absent.jwt")).fetchJwtSvid()).rejects.toBeInstanceOf(AuthenticationError);
    const garbage = tokenFile(dir, "garbage", "not a token");
    await expect(new FileJwtSvidSource(garbage).fetchJwtSvid()).rejects.toThrow(/does not hold a JWT-SVID/);
    const notAgent = tokenFile(dir, "not-agent", unsignedJwt("spiffe://hexr.local/sidecar/acme-corp/pod"));
    await expect(new FileJwtSvidSource(notAgent).fetchJwtSvid()).rejects.toThrow(/agent SPIFFE ID/);
    await expect(new NoJwtSvidSource().fetchJwtSvid()).rejects.toBeInstanceOf(AuthenticationError);
    expect(await identityFromEnvironment({})).toBeInstanceOf(NoJwtSvidSource);
    expect(await identityFromEnvironment({ HEXR_JWT_SVID_FILE: garbage })).toBeInstanceOf(FileJwtSvidSource);
  });
});

describe("the SPIFFE Workload API", () => {
  const socket = path.join(dir, "agent.sock");
  const calls: { audience: string[]; header: unknown }[] = [];
  let token = unsignedJwt(RESEARCHER, 600);
  let server: grpc.Server;

  beforeAll(async () => {
    const definition = protoLoader.loadSync(WORKLOAD_PROTO, { keepCase: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { SpiffeWorkloadAPI: { service: grpc.ServiceDefinition } };
    server = new grpc.Server();
    server.addService(loaded.SpiffeWorkloadAPI.service, {
      FetchJWTSVID(call: grpc.ServerUnaryCall<{ audience: string[] }, unknown>, callback: grpc.sendUnaryData<unknown>) {
        const header = call.metadata.get("workload.spiffe.io")[0];
        calls.push({ audience: call.request.audience, header });
        // As SPIRE's agent: refuse a call without the security header.
        if (header !== "true") return callback({ code: grpc.status.INVALID_ARGUMENT, details: "security header missing from request" });
        callback(null, { svids: [{ spiffe_id: RESEARCHER, svid: token }] });
      },
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  });
  afterAll(() => server.forceShutdown());

  it("fetches the JWT-SVID with the injector's audience and the workload.spiffe.io header, and keeps it until near its exp", async () => {
    const source = await identityFromEnvironment({ SPIFFE_ENDPOINT_SOCKET: `unix://${socket}` });
    expect(source).toBeInstanceOf(WorkloadApiJwtSvidSource);
    const svid = await source.fetchJwtSvid();
    expect([svid.spiffeId, svid.token]).toEqual([RESEARCHER, token]);
    expect(calls).toEqual([{ audience: ["hexr-credential-injector"], header: "true" }]);
    await source.fetchJwtSvid();
    expect(calls).toHaveLength(1); // kept

    vi.useFakeTimers({ toFake: ["Date"] });
    token = unsignedJwt(RESEARCHER, 3600, Date.now() + 600_000);
    vi.setSystemTime(Date.now() + 550_000); // past half its life: fetched again
    expect((await source.fetchJwtSvid()).token).toBe(token);
    expect(calls).toHaveLength(2);
    source.close?.();
  });

  it("a failing Workload API is an AuthenticationError", async () => {
    const source = new WorkloadApiJwtSvidSource({ socket: `unix://${path.join(dir, "nobody.sock")}`, audience: "x", deadlineMs: 500 });
    await expect(source.fetchJwtSvid()).rejects.toBeInstanceOf(AuthenticationError);
    source.close();
  });
});
