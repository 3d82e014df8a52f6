// The host: one compiled module, one plugin configuration, and the state Envoy shares between the
// VMs of its worker threads (shared data, queues, metrics, the clock, outgoing calls). Start as
// many VMs as there are "workers"; each gets its own instance, root context and streams.

import { readFileSync, statSync } from "node:fs";
import { LogLevel, Status } from "./abi.ts";
import { binaryFromText, bytesFromText } from "./binary-string.ts";
import type { HttpCallout } from "./http-callouts.ts";
import { MetricStore } from "./metrics.ts";
import { type Properties, PropertySet } from "./properties.ts";
import { SharedData } from "./shared-data.ts";
import { SharedQueues } from "./shared-queues.ts";
import { VirtualClock } from "./virtual-clock.ts";
import { Vm } from "./vm.ts";

export interface HostOptions {
  /** Path of the .wasm file, its bytes, or a compiled module. */
  wasm: string | Uint8Array | WebAssembly.Module;
  /** The plugin configuration (PluginConfig.configuration); an object is sent as JSON. */
  pluginConfiguration?: string | object;
  /** The VM configuration (VmConfig.configuration). */
  vmConfiguration?: string;
  /** Clusters proxy_http_call may name; any other is BadArgument, as an unknown cluster in Envoy. */
  clusters?: readonly string[];
  /**
   * Envoy's PluginConfig.allow_on_headers_stop_iteration (default false, as in Envoy): whether a
   * Pause from on_request_headers / on_response_headers lets body callbacks run while the headers wait.
   */
  allowOnHeadersStopIteration?: boolean;
  /** Envoy's log level; lower proxy_log messages are dropped. Default Info, Envoy's default. */
  logLevel?: LogLevel;
  /** Wall-clock start of the virtual clock, ms since the epoch. Default 2026-01-01T00:00:00Z. */
  startTimeMs?: number;
  vmId?: string;
  pluginName?: string;
  rootId?: string;
  /** Environment variables the plugin sees (VmConfig.environment_variables). */
  environment?: Record<string, string>;
  /** Attributes readable from every context (e.g. node metadata). */
  properties?: Properties;
}

export interface LogRecord {
  readonly vmIndex: number;
  readonly level: LogLevel;
  readonly message: string;
  readonly source: "proxy_log" | "stdout" | "stderr";
}

const DEFAULT_START_MS = Date.UTC(2026, 0, 1);
const compiledModules = new Map<string, { mtimeMs: number; module: WebAssembly.Module }>();

export class ProxyWasmHost {
  readonly clock: VirtualClock;
  readonly sharedData = new SharedData();
  readonly queues: SharedQueues;
  readonly metrics = new MetricStore();
  /** Every log line the VMs produced at or above the log level, in order. */
  readonly logs: LogRecord[] = [];
  /** Things the host did on the guest's behalf that a test may want to know (e.g. a dropped reply). */
  readonly notes: string[] = [];
  readonly vms: Vm[] = [];
  /** Every proxy_http_call of every VM, in order. */
  readonly httpCalls: HttpCallout[] = [];
  readonly logLevel: LogLevel;
  readonly allowOnHeadersStopIteration: boolean;
  readonly pluginConfiguration: Uint8Array;
  readonly vmConfiguration: Uint8Array;
  /** "NAME=value\0" entries for environ_get. */
  readonly environment: Uint8Array[];
  private readonly module: WebAssembly.Module;
  private readonly clusters: Set<string>;
  private readonly properties: PropertySet;
  private readonly pluginTokens: Map<string, Uint8Array>;
  private readonly posted: (() => void)[] = [];
  private runningPosted = false;

  constructor(options: HostOptions) {
    this.module = compile(options.wasm);
    const configuration = options.pluginConfiguration ?? "";
    this.pluginConfiguration = bytesFromText(typeof configuration === "string" ? configuration : JSON.stringify(configuration));
    this.vmConfiguration = bytesFromText(options.vmConfiguration ?? "");
    this.clusters = new Set((options.clusters ?? []).map(binaryFromText));
    this.allowOnHeadersStopIteration = options.allowOnHeadersStopIteration ?? false;
    this.logLevel = options.logLevel ?? LogLevel.Info;
    this.clock = new VirtualClock(options.startTimeMs ?? DEFAULT_START_MS);
    const vmId = options.vmId ?? "";
    this.queues = new SharedQueues(vmId, (task) => this.posted.push(task));
    this.environment = Object.entries(options.environment ?? {}).map(([name, value]) => bytesFromText(`${name}=${value}\0`));
    this.properties = PropertySet.of(options.properties ?? {});
    this.pluginTokens = new Map([
      ["plugin_name", bytesFromText(options.pluginName ?? "")],
      ["plugin_root_id", bytesFromText(options.rootId ?? "")],
      ["plugin_vm_id", bytesFromText(vmId)],
    ]);
  }

  /** Starts one more VM (a worker): instantiate, initialise, create the root context, configure. */
  startVm(): Vm {
    const vm = new Vm(this, this.vms.length, this.module);
    this.vms.push(vm);
    vm.start();
    return vm;
  }

  /** Moves the virtual clock, firing ticks and http-call timeouts that fall due on the way. */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Outgoing calls still waiting for an answer. */
  pendingHttpCalls(): HttpCallout[] {
    return this.httpCalls.filter((call) => call.pending);
  }

  /** Enqueues on a registered queue as another plugin would; the owner hears of it at once. */
  enqueue(queueName: string, item: string | Uint8Array): Status {
    const token = this.queues.resolve("", binaryFromText(queueName));
    if (token === undefined) return Status.NotFound;
    const status = this.queues.enqueue(token, typeof item === "string" ? bytesFromText(item) : new Uint8Array(item));
    this.runPostedTasks();
    return status;
  }

  /** Log messages at or above `level`, in order. */
  logMessages(level: LogLevel = LogLevel.Trace): string[] {
    return this.logs.filter((record) => record.level >= level).map((record) => record.message);
  }

  // ---- services for the VMs ----

  hasCluster(name: string): boolean {
    return this.clusters.has(name);
  }

  registerCallout(callout: HttpCallout): void {
    this.httpCalls.push(callout);
    callout.armTimeout((delayMs, fire) => this.clock.schedule(delayMs, fire));
  }

  /** Envoy cancels a VM's outstanding calls when its root context goes away (or the VM fails). */
  cancelCallouts(vmIndex: number): void {
    for (const call of this.httpCalls) if (call.vmIndex === vmIndex && call.pending) call.cancel();
  }

  /** Work a worker's dispatcher would run soon (queue notifications), run after the current VM call. */
  runPostedTasks(): void {
    if (this.runningPosted) return;
    this.runningPosted = true;
    try {
      while (this.posted.length > 0) this.posted.shift()!();
    } finally {
      this.runningPosted = false;
    }
  }

  recordLog(record: LogRecord): void {
    if (record.level >= this.logLevel) this.logs.push(record);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  commonProperty(path: string): Uint8Array | undefined {
    return this.pluginTokens.get(path) ?? this.properties.lookup(path);
  }
}

function compile(wasm: HostOptions["wasm"]): WebAssembly.Module {
  if (wasm instanceof WebAssembly.Module) return wasm;
  if (typeof wasm !== "string") return new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
  const { mtimeMs } = statSync(wasm);
  const cached = compiledModules.get(wasm);
  if (cached !== undefined && cached.mtimeMs === mtimeMs) return cached.module;
  const module = new WebAssembly.Module(readFileSync(wasm));
  compiledModules.set(wasm, { mtimeMs, module });
  return module;
}
