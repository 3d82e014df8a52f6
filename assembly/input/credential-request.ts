// What every credential door turns its protocol into: who asks (verified), for which service in
// which region, and the credential's key. The agent's token is not part of it: a door hands it
// over only when the injector is called (see Requester in resolve/worker.ts).
import { Identity } from "./identity";

export class CredentialRequest {
  constructor(public identity: Identity, public service: string, public region: string, public key: string) {}
}

/**
 * The last request a door built, with what it was built from (the verified identity and the
 * body's bytes): the same agent asking again reuses it instead of parsing, checking and building
 * the key anew. Only a request that passed every check is remembered.
 */
export class RecentRequest {
  constructor(public identity: Identity, public body: ArrayBuffer, public request: CredentialRequest) {}

  matches(identity: Identity, body: ArrayBuffer): bool {
    return identity === this.identity && body.byteLength == this.body.byteLength &&
      memory.compare(changetype<usize>(body), changetype<usize>(this.body), <usize>body.byteLength) == 0;
  }
}
