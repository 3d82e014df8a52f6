// What the local stack and e2e tests import from the bridge.
export { startBridge, DEFAULT_VALKEY_USER, type BridgeOptions, type RunningBridge } from "./server.ts";
export { ensureDevKeyFile } from "./keyfile.ts";
export { loadAccessFile, parseAccessConfig, type AccessConfig, type CallerRule } from "./auth/access-config.ts";
export type { TlsFiles } from "../spiffe/tls-files.ts";
export type { ValkeyNode } from "./valkey-connection.ts";
