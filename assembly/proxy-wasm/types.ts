// Enumerations of proxy-wasm ABI v0.2.1 (abi-versions/v0.2.1 of the proxy-wasm spec, "Types").

export const enum Status {
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

/** What a stream callback tells the host. For body callbacks Envoy treats Pause as "stop and buffer". */
export const enum Action {
  Continue = 0,
  Pause = 1,
}

export const enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

export const enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  HttpCallResponseBody = 4,
  VmConfiguration = 6,
  PluginConfiguration = 7,
}

export const enum MapType {
  HttpRequestHeaders = 0,
  HttpRequestTrailers = 1,
  HttpResponseHeaders = 2,
  HttpResponseTrailers = 3,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}

export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

export const enum StreamType {
  Request = 0,
  Response = 1,
}
