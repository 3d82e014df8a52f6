// Numeric values of proxy-wasm ABI v0.2.1 ("Types" in abi-versions/v0.2.1/README.md of
// proxy-wasm/spec) and of the WASI errno values the host returns.

export enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  InternalFailure = 10,
  Unimplemented = 12,
}

export enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

/** What a stream callback returned. 0 and 1 are the ABI's; Envoy also honours 2 and 3 (see http-direction.ts). */
export enum Action {
  Continue = 0,
  Pause = 1,
}

export enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  CallData = 8,
}

export enum MapType {
  HttpRequestHeaders = 0,
  HttpRequestTrailers = 1,
  HttpResponseHeaders = 2,
  HttpResponseTrailers = 3,
  GrpcReceiveInitialMetadata = 4,
  GrpcReceiveTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}

export enum StreamType {
  HttpRequest = 0,
  HttpResponse = 1,
  Downstream = 2,
  Upstream = 3,
}

export enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

export enum WasiErrno {
  Success = 0,
  Badf = 8,
  Fault = 21,
  Inval = 28,
  Noent = 44,
  Nosys = 52,
  Notsup = 58,
}

export enum WasiClock {
  Realtime = 0,
  Monotonic = 1,
}
