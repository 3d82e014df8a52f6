// The LLM filter module: the exchange filter's callbacks plus the response side (it reads answers
// for their usage), and the root context that creates LLM streams. One call, top to bottom:
// llm/door.ts.
import { LlmRoot } from "./llm/root";
import { RootContext, setRootContextFactory } from "./proxy-wasm/context";

export * from "./proxy-wasm/exports";
export * from "./proxy-wasm/response-exports";

setRootContextFactory((id: u32): RootContext => new LlmRoot(id));
