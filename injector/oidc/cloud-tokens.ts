// The tokens the clouds see. After the agent is authenticated and OPA has allowed the exchange,
// the injector mints a short-lived JWT of its own for the one cloud being asked: `iss` = the
// injector's issuer (the one the clouds' federation trusts), `sub` = the agent's SPIFFE ID,
// `aud` = that cloud's audience. The agent never holds such a token, and the agent's own JWT-SVID
// (another issuer, another audience, another key) is never sent to a cloud.
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { OidcConfig } from "../config.ts";
import { signingKeyUnavailable } from "../errors.ts";
import { NoSigningKey, SIGNING_ALGORITHM, type SigningKeyStore } from "./signing-keys.ts";

/** What a cloud exchange needs: a token for `subject`, for one cloud's `audience`. */
export interface CloudTokenMinter {
  mint(subject: string, audience: string): Promise<string>;
}

export class CloudTokenIssuer implements CloudTokenMinter {
  constructor(
    private readonly config: Pick<OidcConfig, "issuer" | "token_lifetime_seconds">,
    private readonly keys: SigningKeyStore,
    private readonly clock: () => number = Date.now,
  ) {}

  async mint(subject: string, audience: string): Promise<string> {
    let key;
    try {
      key = await this.keys.signingKey();
    } catch (error) {
      if (error instanceof NoSigningKey) throw signingKeyUnavailable();
      throw error;
    }
    const now = Math.floor(this.clock() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid: key.kid, typ: "JWT" })
      .setIssuer(this.config.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.config.token_lifetime_seconds)
      .setJti(randomUUID())
      .sign(key.privateKey);
  }
}
