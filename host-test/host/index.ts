// The host-test driver API: a TypeScript proxy-wasm ABI v0.2.1 host for tests (see ../README.md).

export { Action, BufferType, LogLevel, MapType, MetricType, Status, StreamType } from "./abi.ts";
export type { LocalReply } from "./context.ts";
export { GuestExit, HostMisuse, ModuleRejected, VmFailed, WasmTrap } from "./errors.ts";
export { HeaderTemplate, Headers, type HeaderInput } from "./header-map.ts";
export type { CalloutState, HttpCallout, HttpCallResponse } from "./http-callouts.ts";
export { HttpMessage, HttpResponse } from "./http-message.ts";
export type { CallbackRecord, HttpStream, HttpStreamOptions, StreamState } from "./http-stream.ts";
export { ProxyWasmHost, type HostOptions, type LogRecord } from "./host.ts";
export type { Metric } from "./metrics.ts";
export { Int64, Uint64, type Properties, type PropertyValue } from "./properties.ts";
export type { Vm } from "./vm.ts";
