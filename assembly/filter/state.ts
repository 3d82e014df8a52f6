// What every request of one worker shares: the validated configuration, the metric ids and the
// resolution state (waiters). The root builds it at configuration; streams and doors read it.
import { FilterConfig } from "../input/config";
import { Worker } from "../resolve/worker";
import { Metrics } from "./metrics";

export class FilterState {
  readonly worker: Worker;

  constructor(readonly config: FilterConfig, readonly metrics: Metrics, idleTickMs: u32) {
    this.worker = new Worker(config, metrics, idleTickMs);
  }
}
