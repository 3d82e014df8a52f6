// The LLM filter's root context: the exchange filter's (configuration, resolution state, the tick
// that polls revocations and evicts L1) plus its own section of the configuration, and streams
// that read answers.
import { FilterRoot } from "../filter/root";
import { HttpContext } from "../proxy-wasm/context";
import { log } from "../proxy-wasm/host";
import { LogLevel } from "../proxy-wasm/types";
import { message } from "../util/message";
import { parseLlmConfig } from "./config";
import { LlmState } from "./door";
import { LlmMetrics } from "./metrics";
import { LlmStream } from "./stream";

export class LlmRoot extends FilterRoot {
  private llm: LlmState | null = null;

  onConfigure(configuration: ArrayBuffer): bool {
    if (!super.onConfigure(configuration)) return false;
    const result = parseLlmConfig(configuration);
    if (result.config === null) {
      log(LogLevel.Critical, message("hexr LLM filter: invalid plugin configuration: ") + result.error);
      return false;
    }
    this.llm = new LlmState(result.config!, new LlmMetrics());
    log(LogLevel.Info, message("hexr LLM filter configured"));
    return true;
  }

  newHttpContext(id: u32): HttpContext {
    return new LlmStream(id, this, this.state, this.llm!);
  }
}
