// The exchange filter module: the proxy-wasm callbacks Envoy calls (proxy-wasm/exports.ts) and
// the root context they create. The request flow is in exchange.ts.
import { ExchangeRoot } from "./root";
import { RootContext, setRootContextFactory } from "./proxy-wasm/context";

export * from "./proxy-wasm/exports";

setRootContextFactory((id: u32): RootContext => new ExchangeRoot(id));
