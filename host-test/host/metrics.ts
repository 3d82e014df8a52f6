// Metrics as Envoy keeps them for Wasm (Context::defineMetric/incrementMetric/recordMetric/getMetric):
// a stat lives once per name in the host's store, so every VM that defines the same name shares it;
// each VM numbers its own definitions, with the metric type in the id's two low bits.

import { MetricType, Status } from "./abi.ts";
import { textFromBinary } from "./binary-string.ts";

export interface Metric {
  readonly name: string;
  readonly type: MetricType;
  /** Counter total or gauge level; for a histogram, the number of samples. */
  value: number;
  /** Histogram samples in recording order (empty for counters and gauges). */
  readonly samples: number[];
}

const TYPE_MASK = 0x3;
const ID_INCREMENT = 0x4;

/** The host-wide store, by name. */
export class MetricStore {
  private readonly metrics = new Map<string, Metric>();

  /** `name` is a binary string; redefining a name returns the same stat. */
  define(name: string, type: MetricType): Metric {
    const text = textFromBinary(name);
    let metric = this.metrics.get(text);
    if (metric === undefined) {
      metric = { name: text, type, value: 0, samples: [] };
      this.metrics.set(text, metric);
    }
    return metric;
  }

  get(name: string): Metric | undefined {
    return this.metrics.get(name);
  }

  /** A counter's or gauge's value, a histogram's sample count; undefined if never defined. */
  value(name: string): number | undefined {
    return this.metrics.get(name)?.value;
  }

  names(): string[] {
    return [...this.metrics.keys()];
  }

  all(): Metric[] {
    return [...this.metrics.values()];
  }
}

/** One VM's metric ids. */
export class VmMetrics {
  private readonly byId = new Map<number, Metric>();
  private readonly nextId = [MetricType.Counter, MetricType.Gauge, MetricType.Histogram];

  constructor(private readonly store: MetricStore) {}

  define(type: number, name: string): { status: Status; id?: number } {
    if (type > MetricType.Histogram) return { status: Status.BadArgument };
    const id = (this.nextId[type] += ID_INCREMENT);
    this.byId.set(id, this.store.define(name, type));
    return { status: Status.Ok, id };
  }

  increment(id: number, delta: bigint): Status {
    const type = id & TYPE_MASK;
    if (type !== MetricType.Counter && type !== MetricType.Gauge) return Status.BadArgument;
    const metric = this.byId.get(id);
    if (metric === undefined) return Status.NotFound;
    if (type === MetricType.Counter && delta <= 0n) return Status.BadArgument;
    metric.value += Number(delta);
    return Status.Ok;
  }

  /** Counter: adds; gauge: sets; histogram: records a sample. */
  record(id: number, value: bigint): Status {
    const metric = this.byId.get(id);
    if (metric === undefined) return Status.NotFound;
    const number = Number(BigInt.asUintN(64, value));
    if (metric.type === MetricType.Counter) metric.value += number;
    else if (metric.type === MetricType.Gauge) metric.value = number;
    else {
      metric.samples.push(number);
      metric.value = metric.samples.length;
    }
    return Status.Ok;
  }

  get(id: number): { status: Status; value?: number } {
    const type = id & TYPE_MASK;
    if (type !== MetricType.Counter && type !== MetricType.Gauge) return { status: Status.BadArgument };
    const metric = this.byId.get(id);
    return metric === undefined ? { status: Status.NotFound } : { status: Status.Ok, value: metric.value };
  }
}
