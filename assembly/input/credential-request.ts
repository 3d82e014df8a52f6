// What every credential door turns its protocol into: who asks (verified), for which service in
// which region, and the credential's key. The agent's token is not part of it: a door hands it
// over only when the injector is called (see Requester in resolve/worker.ts).
import { Identity } from "./identity";

export class CredentialRequest {
  constructor(public identity: Identity, public service: string, public region: string, public key: string) {}
}

/**
 * The last request a door built, with what it was built from (the verified identity, and the bytes
 * that named the service and region: the Hexr door's body, a stock-SDK door's path and query): the
 * same agent asking again reuses it instead of parsing, checking and building the key anew. Only a
 * request that passed every check is remembered.
 */
export class RecentRequest {
  constructor(public identity: Identity, public source: ArrayBuffer, public request: CredentialRequest) {}

  matches(identity: Identity, source: ArrayBuffer): bool {
    return this.matchesAt(identity, changetype<usize>(source), source.byteLength);
  }

  matchesAt(identity: Identity, at: usize, size: i32): bool {
    return identity === this.identity && size == this.source.byteLength &&
      memory.compare(at, changetype<usize>(this.source), <usize>size) == 0;
  }
}

/** A copy of bytes[at, at + size), to remember what a request was built from. */
export function copyOf(at: usize, size: i32): ArrayBuffer {
  const copy = new ArrayBuffer(size);
  memory.copy(changetype<usize>(copy), at, <usize>size);
  return copy;
}
