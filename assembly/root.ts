// The plugin (root) context: validates the configuration once, defines the metrics, and creates
// one ExchangeStream per HTTP request. Its state is shared by every stream of this worker.
import { FilterConfig, parseConfig } from "./config";
import { ExchangeStream } from "./exchange";
import { Metrics } from "./metrics";
import { HttpContext, RootContext } from "./proxy-wasm/context";
import { log } from "./proxy-wasm/host";
import { LogLevel } from "./proxy-wasm/types";

export class ExchangeRoot extends RootContext {
  config: FilterConfig = new FilterConfig();
  metrics: Metrics | null = null;

  onConfigure(configuration: ArrayBuffer): bool {
    const result = parseConfig(configuration);
    if (result.config === null) {
      // Envoy rejects the plugin when configure fails, so a bad config never reaches a request.
      log(LogLevel.Critical, "hexr exchange filter: invalid plugin configuration: " + result.error);
      return false;
    }
    this.config = result.config!;
    this.metrics = new Metrics(this.config.services);
    log(LogLevel.Info, "hexr exchange filter configured for " + this.config.exchangePath);
    return true;
  }

  newHttpContext(id: u32): HttpContext {
    return new ExchangeStream(id, this);
  }
}
