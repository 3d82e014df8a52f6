// What every credential door turns its protocol into: who asks (verified), for which service in
// which region, the credential's key, and the JWT-SVID the injector re-verifies.
import { Identity } from "./identity";

export class CredentialRequest {
  constructor(
    public identity: Identity,
    public service: string,
    public region: string,
    public key: string,
    /** The agent's `authorization` header as jwt_authn saw it; null for mTLS-only callers. */
    public authorization: ArrayBuffer | null,
  ) {}
}
