// The host's clock in the units the filter works in. Each call is a host call: a request reads it
// once and passes the value on.
import { nowNanoseconds } from "../proxy-wasm/host";

const NANOS_PER_MILLISECOND: u64 = 1_000_000;

export function nowMilliseconds(): i64 {
  return <i64>(nowNanoseconds() / NANOS_PER_MILLISECOND);
}
