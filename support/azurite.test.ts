import { readFileSync } from "node:fs";
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canConnect } from "./processes.ts";
import { AZURITE_ACCOUNT, basicOAuthToken, startAzuriteBlob, type AzuriteBlob } from "./azurite.ts";

let azurite: AzuriteBlob;
beforeAll(async () => (azurite = await startAzuriteBlob()));
afterAll(() => azurite?.stop());

/** One HTTPS request trusting only Azurite's CA (the certificate must name 127.0.0.1). */
function call(method: string, url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method, headers: { "x-ms-version": "2025-11-05", ...headers }, ca: readFileSync(azurite.caFile), agent: false }, (response) => {
      let text = "";
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
    });
    request.on("error", reject);
    request.end();
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("Azurite's blob service", () => {
  // Without --oauth basic, Azurite refuses this bearer token (403): its acceptance shows OAuth is on.
  it("serves HTTPS on loopback (a certificate the returned CA verifies) and accepts a bearer token", async () => {
    expect(azurite.url).toBe(`https://127.0.0.1:${azurite.port}`);
    expect(azurite.accountUrl).toBe(`${azurite.url}/${AZURITE_ACCOUNT}`);
    expect(azurite.clientTrustEnv()).toEqual({ REQUESTS_CA_BUNDLE: azurite.caFile, SSL_CERT_FILE: azurite.caFile, NODE_EXTRA_CA_CERTS: azurite.caFile });
    const answer = await call("GET", `${azurite.accountUrl}?comp=list`, bearer(basicOAuthToken()));
    expect(answer.status, answer.text).toBe(200);
    expect(answer.text).toContain("<EnumerationResults");
  });

  it("refuses a request without a token", async () => {
    const answer = await call("GET", `${azurite.accountUrl}?comp=list`);
    expect(answer.status).toBe(403);
    expect(answer.text).toContain("<Code>AuthorizationFailure</Code>");
  });

  it("accepts only current storage-audience tokens from an Entra ID issuer", async () => {
    const refused = async (token: string) => {
      const answer = await call("GET", `${azurite.accountUrl}?comp=list`, bearer(token));
      return { status: answer.status, code: /<Code>(\w+)<\/Code>/.exec(answer.text)?.[1] };
    };
    const authenticationFailed = { status: 403, code: "AuthenticationFailed" };
    expect(await refused(basicOAuthToken({ lifetimeSeconds: -30 }))).toEqual(authenticationFailed);
    expect(await refused(basicOAuthToken({ audience: "https://management.azure.com" }))).toEqual(authenticationFailed);
    expect(await refused("not-a-jwt")).toEqual(authenticationFailed);
  });

  it("creates containers with a token, and keeps nothing once stopped", async () => {
    const created = await call("PUT", `${azurite.accountUrl}/hexr-support-test?restype=container`, { ...bearer(basicOAuthToken()), "content-length": "0" });
    expect(created.status, created.text).toBe(201);
    const port = azurite.port;
    await azurite.stop();
    expect(await canConnect(port)).toBe(false);
    azurite = await startAzuriteBlob();
    const listed = await call("GET", `${azurite.accountUrl}?comp=list`, bearer(basicOAuthToken()));
    expect(listed.text).not.toContain("hexr-support-test");
  });
});
