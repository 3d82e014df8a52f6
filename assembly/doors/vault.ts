// The vault door: requests under the vault's paths (/v1/secrets, /v1/audit; docs/vault-api.md) for
// the caller's verified identity. It answers nothing itself: it names the caller in
// x-hexr-spiffe-id and x-hexr-identity-source, request headers only this filter can set (the
// stream drops every client x-hexr-* first), and lets Envoy's router forward the request, body and
// all, to the vault over mTLS with the sidecar's own SVID (envoy/sidecar.yaml). The vault believes
// that header only from sidecars, and checks the forwarded JWT-SVID again.
import { HEADER_IDENTITY_SOURCE, HEADER_SPIFFE_ID } from "../contract";
import { credentialError, identityRevoked, severalTokens, svidExpired, unauthenticated } from "../filter/errors";
import { IdentitySource, identitySourceName, resolveIdentity } from "../input/identity";
import { HeaderPairs, replaceHeader } from "../proxy-wasm/host";
import { Action, MapType } from "../proxy-wasm/types";
import { identityPrefix } from "../tiers/keys";
import { nowMilliseconds } from "../util/clock";
import { message } from "../util/message";
import { hasSeveralTokens } from "./credential-door";
import { Door } from "./door";

export class VaultDoor extends Door {
  forwards: bool = true;

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (hasSeveralTokens(headers)) return this.reject(severalTokens());
    const resolved = resolveIdentity(this.state.config.identity);
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    // A listener's own identity is for the stock SDKs' metadata protocols, which carry no caller
    // credential; a secret goes only to a caller that proved who it is.
    if (identity.source == IdentitySource.Static) return this.reject(credentialError(403, message("secrets are served to a caller's own SVID only")));
    const nowSeconds = nowMilliseconds() / 1000;
    if (identity.notAfter >= 0 && nowSeconds >= identity.notAfter) return this.reject(svidExpired());
    const revocation = this.state.config.revocation;
    if (revocation !== null && this.state.worker.revocations.refuses(identityPrefix(identity.spiffe.uri), nowSeconds, revocation.refuseSeconds)) {
      return this.reject(identityRevoked());
    }
    replaceHeader(MapType.HttpRequestHeaders, HEADER_SPIFFE_ID, identity.spiffe.uri);
    replaceHeader(MapType.HttpRequestHeaders, HEADER_IDENTITY_SOURCE, identitySourceName(identity.source));
    return Action.Continue;
  }
}
