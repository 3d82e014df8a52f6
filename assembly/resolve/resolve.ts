// The credential resolution every door shares, as in the diagram: L1 → L2 → L3.
//   L1 (shared data)   hit → serve; in the last part of its life, refresh it in the background
//   miss               a Resolution (resolution.ts): L2, then one exchange per key at the injector
// The door says who asks and for what (a CredentialRequest) and how to answer (a Requester);
// nothing here knows a door's protocol.
import { credentialError, identityRevoked } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { CredentialRequest } from "../input/credential-request";
import { IdentitySource } from "../input/identity";
import { isDueForRefresh } from "../tiers/entry";
import { hasL1Key } from "../tiers/l1";
import { message } from "../util/message";
import { admitsNewKey } from "./caps";
import { refreshInBackground } from "./refresh";
import { Resolution } from "./resolution";
import { Requester, Worker } from "./worker";

export function resolveCredential(worker: Worker, request: CredentialRequest, requester: Requester, nowSeconds: i64): void {
  const config = worker.config;
  const metrics = worker.metrics;
  metrics.invocation(request.service);
  const revocation = config.revocation;
  if (revocation !== null && worker.revocations.refuses(request.key, nowSeconds, revocation.refuseSeconds)) {
    requester.refuse(identityRevoked());
    return;
  }
  const cached = worker.servableFromL1(request.key, nowSeconds);
  if (cached !== null) {
    metrics.hit(Tier.L1);
    if (isDueForRefresh(cached, nowSeconds, config.refreshBufferSeconds, config.refreshAheadPercent)) {
      // The injector re-verifies the agent's JWT-SVID: without one the refresh could only fail,
      // unless the identity is the listener's own (static), which the sidecar may assert.
      const token = requester.agentToken();
      if (token !== null || request.identity.source == IdentitySource.Static) refreshInBackground(worker, request, token);
    }
    requester.serve(request, cached.body, Tier.L1, cached.expiresAt);
    return;
  }
  metrics.miss(Tier.L1);
  if (!hasL1Key(request.key) && !admitsNewKey(request.key, config.maxKeysPerIdentity, config.maxKeys)) {
    requester.refuse(credentialError(429, message("too many distinct credentials: this identity or this sidecar has reached its cap")));
    return;
  }
  new Resolution(worker, request, requester).start();
}
