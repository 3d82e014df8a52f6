// What the local stack and e2e tests import from the bridge.
export { startBridge, type BridgeOptions, type RunningBridge } from "./server.ts";
export { ensureDevKeyFile } from "./keyfile.ts";
export type { ValkeyNode } from "./valkey-connection.ts";
