// Refresh-ahead: a hit in the last part of an entry's servable life starts one background
// re-exchange, so that a busy agent never meets a miss. It takes the key's claim like any leader,
// so it never runs beside another exchange of the key in this Envoy.
import { CredentialRequest } from "../input/credential-request";
import { dispatchHttpCall, HttpCallHandler } from "../proxy-wasm/context";
import { injectorCall, readInjectorAnswer } from "../tiers/injector";
import { nowMilliseconds } from "../util/clock";
import { claimExchange, releaseClaim } from "./claims";
import { fillCaches } from "./fill";
import { Worker } from "./worker";

export function refreshInBackground(worker: Worker, request: CredentialRequest, agentToken: ArrayBuffer | null): void {
  const injector = worker.config.injector;
  if (!claimExchange(request.key, nowMilliseconds(), injector.timeoutMs)) return;
  const call = injectorCall(worker.config, request, agentToken);
  const refresh = new Refresh(worker, request.key);
  if (dispatchHttpCall(injector.cluster, call.headers, call.body, injector.timeoutMs, refresh) == 0) {
    releaseClaim(request.key);
    return;
  }
  worker.metrics.refreshAhead();
}

class Refresh implements HttpCallHandler {
  constructor(private worker: Worker, private key: string) {}

  callContextId(): u32 { return 0; }

  onHttpCallResponse(numHeaders: u32, bodySize: u32): void {
    const answer = readInjectorAnswer(numHeaders, bodySize);
    // A failed refresh costs nothing: the entry is still servable and the next hit tries again.
    if (answer.rejection === null) {
      fillCaches(this.worker.config, this.key, answer.credential, answer.expiresAt, nowMilliseconds() / 1000, null);
    }
    releaseClaim(this.key);
    this.worker.waiters.wakeClaimWaiters(this.key);
  }
}
