// No credential or token in an error's message, toString(), JSON or util.inspect output.
import { inspect } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AccessDeniedError, AuthenticationError, CredentialError, HexrError, SecretNotFoundError, errorFromAnswer, redact, vaultErrorFromAnswer } from "../src/errors.ts";
import { unsignedJwt, RESEARCHER } from "./helpers.ts";

const JWT = unsignedJwt(RESEARCHER);
const SECRETS = [JWT, "ASIAQWERTYUIOPASDFGH", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYxx", "ya29.a0AfB_byC-some-google-token", "Bearer abc.def"];

function everyRendering(error: HexrError): string {
  return [error.message, String(error), error.toString(), JSON.stringify(error), inspect(error), inspect({ wrapped: error }, { depth: 5 }), error.stack ?? ""].join("\n");
}

describe("errors", () => {
  it("have the contract's types and statuses", () => {
    const auth = new AuthenticationError("no identity");
    expect([auth.name, auth.type, auth.status]).toEqual(["AuthenticationError", "AuthenticationError", 401]);
    expect(auth).toBeInstanceOf(HexrError);
    const denied = errorFromAnswer(403, JSON.stringify({ error: { type: "CredentialError", message: "the credential exchange was denied by policy" } }), { service: "aws_s3", region: "us-east-1" });
    expect(denied).toBeInstanceOf(CredentialError);
    expect(denied.toJSON()).toEqual({ name: "CredentialError", type: "CredentialError", status: 403, message: "the credential exchange was denied by policy", service: "aws_s3", region: "us-east-1" });
    expect(errorFromAnswer(429, "", { service: "aws_s3", region: "us-east-1" })).toBeInstanceOf(CredentialError);
    expect(errorFromAnswer(503, "<html>", { service: "aws_s3", region: "us-east-1" })).toBeInstanceOf(CredentialError);
    expect(errorFromAnswer(401, "{}", { service: "aws_s3", region: "us-east-1" })).toBeInstanceOf(AuthenticationError);
    const bad = errorFromAnswer(400, JSON.stringify({ error: { type: "BadRequest", message: "'service' is not a known service" } }), { service: "aws_x", region: "us-east-1" });
    expect([bad.constructor.name, bad.type, bad.status]).toEqual(["HexrError", "BadRequest", 400]);
    expect(inspect(denied)).toMatch(/^CredentialError \[CredentialError 403\]: the credential exchange was denied by policy\n\s+at /);
  });

  it("never show a token or credential, whatever message they were given", () => {
    for (const secret of SECRETS) {
      for (const error of [new HexrError(`x ${secret} y`), new AuthenticationError(`token ${secret}`), errorFromAnswer(403, JSON.stringify({ error: { type: "CredentialError", message: `leak ${secret}` } }), { service: "aws_s3", region: "us-east-1" })]) {
        const shown = everyRendering(error);
        expect(shown.includes(secret), `${error.name} shows a secret`).toBe(false);
        expect(shown).toContain("[redacted]");
      }
    }
  });

  it("the vault's: 403 AccessDeniedError (a CredentialError), 404 SecretNotFoundError, the rest as for the exchange", () => {
    const body = (type: string) => JSON.stringify({ error: { type, message: "the vault's message" } });
    const denied = vaultErrorFromAnswer(403, body("CredentialError"));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect(denied).toBeInstanceOf(CredentialError);
    expect(denied.toJSON()).toEqual({ name: "AccessDeniedError", type: "CredentialError", status: 403, message: "the vault's message" });
    const missing = vaultErrorFromAnswer(404, body("BadRequest"));
    expect(missing).toBeInstanceOf(SecretNotFoundError);
    expect([missing.name, missing.type, missing.status, String(missing)]).toEqual(["SecretNotFoundError", "BadRequest", 404, "SecretNotFoundError [BadRequest 404]: the vault's message"]);
    expect(vaultErrorFromAnswer(409, body("BadRequest")).constructor).toBe(HexrError);
    expect(vaultErrorFromAnswer(401, "").constructor).toBe(AuthenticationError);
    expect(vaultErrorFromAnswer(503, "<html>").message).toBe("the vault is unavailable");
    expect(new AccessDeniedError("x").status).toBe(403);
    expect(new SecretNotFoundError("x").status).toBe(404);
    for (const secret of SECRETS) {
      const leaky = vaultErrorFromAnswer(403, JSON.stringify({ error: { type: "CredentialError", message: `leak ${secret}` } }));
      expect(everyRendering(leaky)).not.toContain(secret);
    }
  });

  it("redact() removes random JWTs and long keys embedded anywhere (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.base64String({ minLength: 40, maxLength: 80 }), fc.string({ maxLength: 30 }), (before, secret, after) => {
        fc.pre(/^[A-Za-z0-9+/=]{40,}$/.test(secret));
        expect(redact(`${before} ${secret} ${after}`)).not.toContain(secret);
      }),
      { numRuns: 500 },
    );
  });
});
