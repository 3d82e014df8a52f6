// Every VM polls the bridge's revocation log. Each prefix revoked since it last looked is recorded
// in shared data for every VM of this Envoy (tiers/revocations.ts: nothing stored before it is
// served again), and the L1 entries this VM stored under it are emptied. If the log cannot be read
// for max_log_staleness_ms, revocations may have been missed: entries stored before then are not
// served until it can be read again (fail closed, not open).
import { Metrics } from "../filter/metrics";
import { RevocationConfig } from "../input/config";
import { dispatchHttpCall, HttpCallHandler } from "../proxy-wasm/context";
import { getBuffer, getHeaderBytes } from "../proxy-wasm/host";
import { BufferType, MapType } from "../proxy-wasm/types";
import { revocationsSince } from "../tiers/bridge";
import { ALL_CREDENTIALS_PREFIX } from "../tiers/keys";
import { Revocations } from "../tiers/revocations";
import { forgetKeysWithPrefix } from "../tiers/stored-keys";
import { decimalValue } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { JsonKind, parseJson } from "../util/json";

export class RevocationPoller implements HttpCallHandler {
  /** The bridge's revocation epoch this VM has applied; -1 until the first poll answered. */
  private epoch: i64 = -1;
  private polling: bool = false;
  private nextPollMs: i64 = 0;
  /** When the log was last read; a VM starts as if it had just been (its first poll is immediate). */
  private lastReadMs: i64 = -1;

  constructor(private config: RevocationConfig, private metrics: Metrics, private revocations: Revocations) {}

  /** On the tick: asks for the revocations since this VM's epoch, unless a poll is still out. */
  poll(nowMs: i64): void {
    if (this.lastReadMs < 0) this.lastReadMs = nowMs;
    const staleSinceMs = nowMs - this.config.maxLogStalenessMs;
    this.revocations.notBeforeSeconds = this.lastReadMs < staleSinceMs ? staleSinceMs / 1000 : 0;
    if (this.polling || nowMs < this.nextPollMs) return;
    this.nextPollMs = nowMs + this.config.pollIntervalMs;
    const bridge = this.config.bridge;
    const call = revocationsSince(bridge, this.epoch);
    this.polling = dispatchHttpCall(bridge.cluster, call, null, bridge.timeoutMs, this) != 0;
  }

  callContextId(): u32 {
    return 0;
  }

  onHttpCallResponse(numHeaders: u32, bodySize: u32): void {
    this.polling = false;
    if (numHeaders == 0 || bodySize == 0) return;
    if (decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, ":status")) != 200) return;
    const body = getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
    const log = body !== null ? parseRevocationLog(body) : null;
    if (log === null) return;
    const nowMs = nowMilliseconds();
    this.lastReadMs = nowMs;
    this.revocations.notBeforeSeconds = 0;
    if (this.epoch >= 0 && (log.gap || log.epoch < this.epoch)) {
      // Revocations this VM never saw are gone from the log (trimmed, or lost with Valkey's data):
      // what they revoked is unknown, so nothing stored before now is served (fail closed).
      this.revocations.add(ALL_CREDENTIALS_PREFIX, nowMs / 1000, false);
      this.metrics.evicted(forgetKeysWithPrefix(ALL_CREDENTIALS_PREFIX));
      this.epoch = log.epoch;
      return;
    }
    // The first answer only tells where the log stands: this VM holds nothing older than itself.
    if (this.epoch >= 0) {
      for (let i = 0; i < log.prefixes.length; i++) {
        this.revocations.add(log.prefixes[i], nowMs / 1000, true);
        this.metrics.evicted(forgetKeysWithPrefix(log.prefixes[i]));
      }
    }
    this.epoch = log.epoch;
  }
}

/** The bridge's log since some epoch: {"epoch": N, "prefixes": [...], "gap": bool}. */
class RevocationLog {
  constructor(public epoch: i64, public prefixes: string[], public gap: bool) {}
}

function parseRevocationLog(body: ArrayBuffer): RevocationLog | null {
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return null;
  const epoch = root.member("epoch");
  const list = root.member("prefixes");
  if (epoch === null || !epoch.isInteger() || epoch.number < 0 || list === null || list.kind != JsonKind.Array) return null;
  const prefixes = new Array<string>();
  for (let i = 0; i < list.items.length; i++) {
    const item = list.items[i];
    // Only prefixes of the shape this filter revokes: anything else is ignored, never applied widely.
    if (item.kind == JsonKind.String && item.text.startsWith(ALL_CREDENTIALS_PREFIX)) prefixes.push(item.text);
  }
  const gap = root.member("gap");
  return new RevocationLog(<i64>epoch.number, prefixes, gap !== null && gap.kind == JsonKind.Bool && gap.boolean);
}
