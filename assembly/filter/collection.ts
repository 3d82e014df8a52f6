// The module runs AssemblyScript's minimal runtime: no collection interrupts a callback (the
// incremental collector spent more time than the whole request on small, steady allocation).
// Garbage is collected at safe points instead — after every STREAMS_PER_COLLECTION deleted streams
// and on every tick — where no managed reference is on the wasm stack: Envoy never re-enters the
// VM while a host call runs, and these run at the end of a callback.
const STREAMS_PER_COLLECTION: u32 = 64;
let streamsSinceCollection: u32 = 0;

export function collectAfterStream(): void {
  if (++streamsSinceCollection >= STREAMS_PER_COLLECTION) collectNow();
}

export function collectNow(): void {
  streamsSinceCollection = 0;
  __collect();
}
