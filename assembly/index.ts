// The filter module: the proxy-wasm callbacks Envoy calls (proxy-wasm/exports.ts) and the root
// context they create (filter/root.ts). One request, top to bottom: doors/hexr-json.ts.
import { FilterRoot } from "./filter/root";
import { RootContext, setRootContextFactory } from "./proxy-wasm/context";

export * from "./proxy-wasm/exports";

setRootContextFactory((id: u32): RootContext => new FilterRoot(id));
