// What every request of one worker shares: the validated configuration, the metric ids and the
// resolution state (waiters). The root builds it at configuration; streams and doors read it.
import { FilterConfig } from "../input/config";
import { RecentRequest } from "../input/credential-request";
import { Worker } from "../resolve/worker";
import { Metrics } from "./metrics";

export class FilterState {
  readonly worker: Worker;
  /** The last credential request the Hexr door built on this worker (see RecentRequest). */
  recentRequest: RecentRequest | null = null;
  /** The same for the stock-SDK doors, by request path (each door's paths are its own). */
  recentPathRequest: RecentRequest | null = null;

  constructor(readonly config: FilterConfig, readonly metrics: Metrics, idleTickMs: u32) {
    this.worker = new Worker(config, metrics, idleTickMs);
  }
}
