// One Wasm VM: an instance of the host's compiled module with its own memory, root context and
// streams (an Envoy worker thread's copy of the plugin). All calls into the guest go through
// invoke(), which mirrors cpp-host's DeferAfterCallActions: the effective context is reset for each
// callback, and actions the guest requested (local replies, stream continuations) run right after
// the outermost callback returns. A trap or proc_exit fails the VM for good.

import type { LogLevel } from "./abi.ts";
import { ReadOnlyBuffer } from "./buffers.ts";
import { Context, RootContext } from "./context.ts";
import { GuestExit, ModuleRejected, VmFailed, WasmTrap } from "./errors.ts";
import type { DeliveredResponse, HttpCallout } from "./http-callouts.ts";
import { HttpStream, type HttpStreamOptions } from "./http-stream.ts";
import { GuestMemory } from "./guest-memory.ts";
import { VmMetrics } from "./metrics.ts";
import type { QueueListener } from "./shared-queues.ts";
import { proxyImports } from "./proxy-imports.ts";
import { wasiImports } from "./wasi-imports.ts";
import type { ProxyWasmHost } from "./host.ts";

type GuestFunction = (a?: number, b?: number, c?: number, d?: number, e?: number) => number | undefined;

const STDERR_KEPT = 4096;
const ABI_MARKER = "proxy_abi_version_0_2_1";

export class Vm implements QueueListener {
  readonly root: RootContext;
  readonly memory: GuestMemory;
  readonly metrics: VmMetrics;
  readonly vmConfiguration: ReadOnlyBuffer;
  /** proxy_on_vm_start's answer (undefined before start). */
  vmStarted: boolean | undefined;
  /** proxy_on_configure's answer; false or undefined means Envoy would reject the configuration. */
  configured: boolean | undefined;
  private readonly functions = new Map<string, GuestFunction>();
  private readonly contexts = new Map<number, Context>();
  private nextContextId = 1;
  private nextCalloutToken = 1;
  private effectiveContext: Context;
  private depth = 0;
  private readonly afterCall: (() => void)[] = [];
  private failure: WasmTrap | undefined;
  private stderrTail = "";
  private rootPendingDone = false;

  constructor(
    readonly host: ProxyWasmHost,
    readonly index: number,
    module: WebAssembly.Module,
  ) {
    this.root = new RootContext(this, this.nextContextId++);
    this.contexts.set(this.root.id, this.root);
    this.effectiveContext = this.root;
    this.metrics = new VmMetrics(host.metrics);
    this.vmConfiguration = new ReadOnlyBuffer(host.vmConfiguration);
    const imports: WebAssembly.Imports = { env: proxyImports(this), wasi_snapshot_preview1: wasiImports(this) };
    checkLinkable(module, imports);
    const instance = new WebAssembly.Instance(module, imports);
    for (const [name, value] of Object.entries(instance.exports)) {
      if (typeof value === "function") this.functions.set(name, value as GuestFunction);
    }
    const memory = instance.exports.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new ModuleRejected("the module exports no memory");
    const allocate = this.functions.get("proxy_on_memory_allocate") ?? this.functions.get("malloc");
    if (allocate === undefined) throw new ModuleRejected("the module exports neither proxy_on_memory_allocate nor malloc");
    this.memory = new GuestMemory(memory, (size) => allocate(size) ?? 0);
  }

  /** Startup as proxy-wasm-cpp-host runs it: _initialize (+ main) or _start, then the root context. */
  start(): void {
    if (this.functions.has("_initialize")) {
      this.invoke(this.root, "_initialize");
      if (this.functions.has("main")) this.invoke(this.root, "main", 0, 0);
    } else if (this.functions.has("_start")) {
      this.invoke(this.root, "_start");
    }
    this.invoke(this.root, "proxy_on_context_create", this.root.id, 0);
    this.vmStarted = (this.invoke(this.root, "proxy_on_vm_start", this.root.id, this.vmConfiguration.size) ?? 1) !== 0;
    if (!this.vmStarted) return;
    const configuration = new ReadOnlyBuffer(this.host.pluginConfiguration);
    this.root.pluginConfigurationInScope = configuration;
    try {
      this.configured = (this.invoke(this.root, "proxy_on_configure", this.root.id, configuration.size) ?? 1) !== 0;
    } finally {
      this.root.pluginConfigurationInScope = undefined;
    }
  }

  /** A new HTTP stream on this VM; the guest hears of it with the request headers. */
  newHttpStream(options: HttpStreamOptions = {}): HttpStream {
    this.assertUsable();
    return new HttpStream(this, this.nextContextId++, options);
  }

  /** VM shutdown: proxy_on_done on the root; if it answers false, the root waits for proxy_done. */
  shutdown(): void {
    const done = this.invoke(this.root, "proxy_on_done", this.root.id) ?? 1;
    if (done !== 0) this.deleteRoot();
    else this.rootPendingDone = true;
  }

  get failed(): WasmTrap | undefined {
    return this.failure;
  }

  get effective(): Context {
    return this.effectiveContext;
  }

  /** proxy_set_effective_context. */
  setEffectiveContext(id: number): boolean {
    const context = this.contexts.get(id);
    if (context === undefined) return false;
    this.effectiveContext = context;
    return true;
  }

  /** proxy_done: only a root context that answered false to proxy_on_done may finish. */
  done(): boolean {
    if (!this.rootPendingDone) return false;
    this.rootPendingDone = false;
    this.defer(() => this.deleteRoot());
    return true;
  }

  /** Runs `action` once the outermost guest call returns (or now, if none is running). */
  defer(action: () => void): void {
    if (this.depth === 0) action();
    else this.afterCall.push(action);
  }

  takeCalloutToken(): number {
    return this.nextCalloutToken++;
  }

  adoptContext(context: Context): void {
    this.contexts.set(context.id, context);
  }

  forgetContext(context: Context): void {
    this.contexts.delete(context.id);
  }

  /**
   * Calls guest export `name` with `context` as the effective context. Returns the
   * export's result, or undefined if the module does not export it (every callback is optional).
   */
  invoke(context: Context, name: string, a?: number, b?: number, c?: number, d?: number, e?: number): number | undefined {
    this.assertUsable();
    const fn = this.functions.get(name);
    if (fn === undefined) return undefined;
    const outerEffective = this.effectiveContext;
    this.effectiveContext = context;
    this.depth++;
    let result: number | undefined;
    try {
      result = fn(a, b, c, d, e); // missing arguments reach wasm as 0 and surplus ones are ignored
    } catch (error) {
      throw this.classify(name, error);
    } finally {
      this.depth--;
      this.effectiveContext = outerEffective;
    }
    if (this.depth === 0) {
      this.runAfterCallActions();
      this.host.runPostedTasks();
    }
    return result;
  }

  deliverTick(root: RootContext): void {
    if (this.failure === undefined) this.invoke(root, "proxy_on_tick", root.id);
  }

  deliverHttpCallResponse(callout: HttpCallout, response: DeliveredResponse | undefined): void {
    if (this.failure !== undefined) return;
    const root = this.root;
    root.httpCallResponse = response;
    root.httpCallFailed = response === undefined;
    // Envoy forgets the response before any action the callback requested (it is queued first).
    this.afterCall.push(() => {
      root.httpCallResponse = undefined;
      root.httpCallFailed = false;
    });
    const headers = response?.headers.count ?? 0;
    const body = response?.body.byteLength ?? 0;
    const trailers = response?.trailers.count ?? 0;
    this.invoke(root, "proxy_on_http_call_response", root.id, callout.token, headers, body, trailers);
  }

  queueReady(rootContextId: number, token: number): void {
    const root = this.contexts.get(rootContextId);
    if (this.failure === undefined && root !== undefined) this.invoke(root, "proxy_on_queue_ready", rootContextId, token);
  }

  /** Properties every context can read: plugin_name, plugin_root_id, plugin_vm_id, then the host's. */
  commonProperty(path: string): Uint8Array | undefined {
    return this.host.commonProperty(path);
  }

  /** proxy_log, and fd_write to stdout/stderr, which Envoy logs at info/error. */
  log(level: LogLevel, message: string, source: "proxy_log" | "stdout" | "stderr"): void {
    if (source === "stderr") this.stderrTail = (this.stderrTail + message + "\n").slice(-STDERR_KEPT);
    this.host.recordLog({ vmIndex: this.index, level, message, source });
  }

  private runAfterCallActions(): void {
    while (this.afterCall.length > 0) this.afterCall.shift()!();
  }

  private deleteRoot(): void {
    this.invoke(this.root, "proxy_on_delete", this.root.id);
    this.root.stopTicks();
    this.host.cancelCallouts(this.index);
  }

  private assertUsable(): void {
    if (this.failure !== undefined) throw new VmFailed(this.index, this.failure);
  }

  /** A fault of the guest fails the VM; anything else is the host's or the test's own error. */
  private classify(callback: string, error: unknown): unknown {
    if (error instanceof WasmTrap || error instanceof VmFailed) return error;
    const guestFault =
      error instanceof WebAssembly.RuntimeError ||
      error instanceof GuestExit ||
      (error instanceof RangeError && /call stack/i.test(error.message));
    if (!guestFault) return error;
    this.failure = new WasmTrap(callback, this.index, error, this.stderrTail.trim());
    this.afterCall.length = 0;
    this.root.stopTicks();
    this.host.cancelCallouts(this.index);
    return this.failure;
  }
}

/** Envoy refuses a module that does not declare ABI 0.2.1 or imports a function it does not provide. */
function checkLinkable(module: WebAssembly.Module, imports: WebAssembly.Imports): void {
  if (!WebAssembly.Module.exports(module).some((entry) => entry.name === ABI_MARKER)) {
    throw new ModuleRejected(`the module does not export ${ABI_MARKER}`);
  }
  const missing = WebAssembly.Module.imports(module)
    .filter((entry) => entry.kind !== "function" || typeof imports[entry.module]?.[entry.name] !== "function")
    .map((entry) => `${entry.module}.${entry.name}`);
  if (missing.length > 0) throw new ModuleRejected(`the module imports what the host does not provide: ${missing.join(", ")}`);
}
