// When the policy engine or the cloud's STS fails, the answer is a clear 5xx, on time, never an
// allow, and never a token in the error.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt } from "jose";
import { freePort } from "../../support/processes.ts";
import { ensureOpaToken, startOpa, type OpaServer } from "../../support/opa.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, OIDC_ISSUER, baseConfig, filterHeaders, send, sidecarTls, startBlackHole, startCaptured, testIdentity,
  type ClientTls, type TestIdentity,
} from "./helpers.ts";

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;
let tls: ClientTls;

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await Promise.all([opa?.stop(), moto?.stop()]);
  await identity?.remove();
});

/** Runs one exchange for the analyst (whom the policy allows aws_s3) against a purpose-built injector. */
async function exchangeWith(overrides: Partial<InjectorConfigInput>) {
  const injector = await startCaptured({
    ...baseConfig(identity, opa),
    aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    ...overrides,
  });
  try {
    const token = await identity.mint(ANALYST_ID);
    const started = Date.now();
    const reply = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"aws_s3"}', tls });
    return { reply, elapsedMs: Date.now() - started, token, log: injector.logLines().at(-1) };
  } finally {
    await injector.close();
  }
}

describe("the policy engine failing", () => {
  it("answers 503 when OPA is down, never an allow", async () => {
    const closedPort = await freePort();
    const { reply, log } = await exchangeWith({ opa: { url: `http://127.0.0.1:${closedPort}`, timeout_ms: 500, token_file: opa.auth.tokenFile } });
    expect(reply.status).toBe(503);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "the policy engine is unreachable" } });
    expect(log).toMatchObject({ decision: "error", outcome: "policy_unavailable", status: 503 });
  });

  it("answers 503 within the OPA timeout when OPA hangs", async () => {
    opa.pause();
    try {
      const { reply, elapsedMs } = await exchangeWith({ opa: { url: opa.url, timeout_ms: 300, token_file: opa.auth.tokenFile } });
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("the policy engine did not answer within 300 ms");
      expect(elapsedMs).toBeLessThan(1500);
    } finally {
      opa.resume();
    }
  });

  it("answers 503 when the decision is undefined (policy not loaded)", async () => {
    const { reply } = await exchangeWith({ opa: { url: opa.url, decision_path: "hexr/not_loaded/decision", token_file: opa.auth.tokenFile } });
    expect(reply.status).toBe(503);
    expect(reply.json.error.message).toBe("the policy decision is undefined (is the policy loaded?)");
  });
});

describe("the policy engine coming back", () => {
  it("answers again once OPA is restarted on its address", async () => {
    // The restarted server keeps the token the injector holds.
    const auth = ensureOpaToken(await mkdtemp(path.join(tmpdir(), "hexr-opa-restart-")));
    let ownOpa = await startOpa({ auth });
    const injector = await startCaptured({
      ...baseConfig(identity, ownOpa),
      aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    });
    try {
      const exchange = async () => {
        const token = await identity.mint(ANALYST_ID);
        return (await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"aws_s3"}', tls })).status;
      };
      expect(await exchange()).toBe(200);
      await ownOpa.stop();
      expect(await exchange()).toBe(503);
      ownOpa = await startOpa({ port: ownOpa.port, auth });
      expect(await exchange()).toBe(200);
    } finally {
      await injector.close();
      await ownOpa.stop();
      await rm(path.dirname(auth.tokenFile), { recursive: true, force: true });
    }
  });
});

describe("AWS STS failing", () => {
  it("answers 503 when STS is down", async () => {
    const closedPort = await freePort();
    const { reply, elapsedMs, log } = await exchangeWith({
      aws: { sts_endpoint: `http://127.0.0.1:${closedPort}`, role_arns: { "*": DEFAULT_ROLE_ARN }, timeout_ms: 3000 },
    });
    expect(reply.status).toBe(503);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "AWS STS is unreachable" } });
    expect(elapsedMs).toBeLessThan(3000);
    expect(log).toMatchObject({ decision: "allow", outcome: "exchange_unavailable", status: 503 });
  });

  it("answers 504 within its timeout when STS hangs", async () => {
    const blackHole = await startBlackHole();
    try {
      const { reply, elapsedMs } = await exchangeWith({
        aws: { sts_endpoint: blackHole.url, role_arns: { "*": DEFAULT_ROLE_ARN }, timeout_ms: 800 },
      });
      expect(reply.status).toBe(504);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "AWS STS did not answer within 800 ms" } });
      expect(elapsedMs).toBeGreaterThanOrEqual(790);
      expect(elapsedMs).toBeLessThan(2000);
    } finally {
      await blackHole.close();
    }
  });

  it("answers 502 with the STS error code, and nothing else of its reply", async () => {
    let seenToken = "";
    const sts: Server = createServer((request, response) => {
      let form = "";
      request.on("data", (chunk) => (form += chunk));
      request.on("end", () => {
        seenToken = new URLSearchParams(form).get("WebIdentityToken") ?? "";
        response.writeHead(400, { "content-type": "text/xml" });
        response.end(
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>` +
            `<Code>InvalidIdentityToken</Code><Message>Token ${seenToken} was not accepted</Message></Error>` +
            `<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>`,
        );
      });
    });
    await new Promise<void>((resolve) => sts.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = sts.address() as { port: number };
      const { reply, token, log } = await exchangeWith({ aws: { sts_endpoint: `http://127.0.0.1:${port}`, role_arns: { "*": DEFAULT_ROLE_ARN } } });
      // STS saw the injector's token for it, not the agent's JWT-SVID.
      expect(seenToken).not.toBe(token);
      expect(decodeJwt(seenToken)).toMatchObject({ iss: OIDC_ISSUER, sub: ANALYST_ID, aud: "sts.amazonaws.com" });
      expect(reply.status).toBe(502);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "AWS STS rejected the exchange: InvalidIdentityToken" } });
      expect(log).toMatchObject({ outcome: "exchange_rejected", status: 502 });
      expect(reply.body).not.toContain(seenToken);
      for (const secret of [token, seenToken]) expect(JSON.stringify(log)).not.toContain(secret);
    } finally {
      await new Promise((resolve) => sts.close(resolve));
    }
  });
});

describe("the OIDC signing key missing", () => {
  it("answers 503 and calls no cloud when no key may sign the token the cloud needs", async () => {
    const config = baseConfig(identity, opa);
    const keysDir = path.join(identity.paths.dir, "oidc-keys-removed");
    await moto.startRecording();
    const injector = await startCaptured({ ...config, oidc: { ...config.oidc, signing_keys_dir: keysDir }, aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } } });
    try {
      for (const file of await readdir(keysDir)) await rm(path.join(keysDir, file));
      await injector.signingKeys!.reload();
      const token = await identity.mint(ANALYST_ID);
      const reply = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"aws_s3"}', tls });
      expect(reply.status).toBe(503);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "the injector's OIDC signing key is unavailable" } });
      expect(injector.logLines().at(-1)).toMatchObject({ decision: "allow", outcome: "signing_key_unavailable", status: 503 });
      const assumed = (await moto.recordedRequests()).filter((request) => request.body.includes("AssumeRoleWithWebIdentity"));
      expect(assumed).toHaveLength(0);
    } finally {
      await injector.close();
    }
  });
});

describe("providers that are not configured", () => {
  it("answers 503 for an allowed service whose provider has no configuration", async () => {
    // policy/data.json grants research-analyst gcp_vertexai; this injector has no gcp section
    const injector = await startCaptured({ ...baseConfig(identity, opa), aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } } });
    try {
      const token = await identity.mint(ANALYST_ID);
      const reply = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"gcp_vertexai"}', tls });
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("gcp exchanges are not configured on this injector");
    } finally {
      await injector.close();
    }
  });

  it("answers 403 when no AWS role is mapped to the identity", async () => {
    const { reply } = await exchangeWith({ aws: { sts_endpoint: moto.url, role_arns: { globex: DEFAULT_ROLE_ARN } } });
    expect(reply.status).toBe(403);
    expect(reply.json.error.message).toBe("no AWS role is configured for acme-corp/research-analyst/main");
  });
});
