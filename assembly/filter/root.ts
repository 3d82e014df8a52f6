// The plugin (root) context of one worker: configuration, and the tick that runs the work no single
// request owns — waking waiters, polling the revocation log, evicting expired L1 entries, collecting
// garbage.
import { PROVIDERS } from "../input/catalog";
import { FilterConfig, parseConfig } from "../input/config";
import { HttpContext, RootContext } from "../proxy-wasm/context";
import { log, setTickPeriodMilliseconds } from "../proxy-wasm/host";
import { LogLevel } from "../proxy-wasm/types";
import { prepareClaims, sweepForgottenFailures } from "../resolve/claims";
import { RevocationPoller } from "../revocation/poller";
import { evictExpiredKeys } from "../tiers/stored-keys";
import { nowMilliseconds } from "../util/clock";
import { message } from "../util/message";
import { collectAfterStream, collectNow } from "./collection";
import { Metrics } from "./metrics";
import { FilterState } from "./state";
import { FilterStream } from "./stream";

export class FilterRoot extends RootContext {
  protected state: FilterState = new FilterState(new FilterConfig(), new Metrics([]), 60_000);
  private poller: RevocationPoller | null = null;
  private nextEvictionMs: i64 = 0;

  onConfigure(configuration: ArrayBuffer): bool {
    const result = parseConfig(configuration);
    const config = result.config;
    if (config === null) {
      // Envoy rejects the plugin when configure fails, so a bad config never reaches a request.
      log(LogLevel.Critical, message("hexr exchange filter: invalid plugin configuration: ") + result.error);
      return false;
    }
    const idleTickMs = idleTickPeriod(config);
    const metrics = new Metrics(config.services);
    this.state = new FilterState(config, metrics, idleTickMs);
    const revocation = config.revocation;
    this.poller = revocation !== null ? new RevocationPoller(revocation, metrics, this.state.worker.revocations) : null;
    prepareClaims();
    this.nextEvictionMs = nowMilliseconds() + config.evictionIntervalSeconds * 1000;
    setTickPeriodMilliseconds(idleTickMs);
    for (let i = 0; i < config.anyRegion.length; i++) {
      if (config.anyRegion[i]) {
        log(LogLevel.Warn, message("hexr exchange filter: regions.") + PROVIDERS[i] + message(" is \"any\"; every region named stays in L1 (load tests only)"));
      }
    }
    if (config.debugTrapPath !== null) {
      log(LogLevel.Warn, message("hexr exchange filter: debug_trap_path is set; requests to it trap the VM (tests only)"));
    }
    log(LogLevel.Info, message("hexr exchange filter configured for ") + config.exchangePath);
    return true;
  }

  newHttpContext(id: u32): HttpContext {
    return new FilterStream(id, this, this.state);
  }

  onTick(): void {
    const nowMs = nowMilliseconds();
    const waiters = this.state.worker.waiters;
    waiters.pollClaims(nowMs);
    waiters.recheckLocks(nowMs);
    this.state.worker.revocations.refresh();
    const poller = this.poller;
    if (poller !== null) poller.poll(nowMs);
    if (nowMs >= this.nextEvictionMs) {
      this.nextEvictionMs = nowMs + this.state.config.evictionIntervalSeconds * 1000;
      this.state.metrics.evicted(evictExpiredKeys(nowMs / 1000));
    }
    sweepForgottenFailures(nowMs);
    this.state.metrics.flush();
    collectNow();
  }

  onStreamDeleted(): void {
    collectAfterStream();
  }
}

/** The tick's period while nobody waits: the shortest of eviction, metrics flush and revocation poll. */
function idleTickPeriod(config: FilterConfig): u32 {
  let period = min(config.evictionIntervalSeconds * 1000, config.metricsFlushMs);
  const revocation = config.revocation;
  if (revocation !== null) period = min(period, revocation.pollIntervalMs);
  return <u32>period;
}
