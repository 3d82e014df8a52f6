// Shared queues (proxy-wasm-cpp-host src/shared_queue.cc). A queue is named within a vm_id; its
// token never changes. The root context that registered it last is told, by proxy_on_queue_ready
// posted to its VM (as Envoy posts to the worker's dispatcher), whenever an item is enqueued.

import { Status } from "./abi.ts";
import { binaryFromText } from "./binary-string.ts";

export interface QueueListener {
  queueReady(rootContextId: number, token: number): void;
}

interface Queue {
  readonly items: Uint8Array[];
  listener: QueueListener | undefined;
  rootContextId: number;
}

export class SharedQueues {
  private readonly tokens = new Map<string, number>();
  private readonly queues = new Map<number, Queue>();
  private nextToken = 1;

  /** @param post runs a task after the current VM call, as a worker's dispatcher would */
  constructor(
    private readonly vmId: string,
    private readonly post: (task: () => void) => void,
  ) {}

  /** `name` is a binary string. Registering an existing name re-targets it and keeps its items. */
  register(name: string, listener: QueueListener | undefined, rootContextId: number): number {
    let token = this.tokens.get(name);
    if (token === undefined) {
      token = this.nextToken++;
      this.tokens.set(name, token);
      this.queues.set(token, { items: [], listener, rootContextId });
    } else {
      const queue = this.queues.get(token)!;
      queue.listener = listener;
      queue.rootContextId = rootContextId;
    }
    return token;
  }

  /** The token of `name` in `vmId` (empty = this host's vm_id), or undefined. */
  resolve(vmId: string, name: string): number | undefined {
    if (vmId !== "" && vmId !== binaryFromText(this.vmId)) return undefined;
    return this.tokens.get(name);
  }

  enqueue(token: number, item: Uint8Array): Status {
    const queue = this.queues.get(token);
    if (queue === undefined) return Status.NotFound;
    queue.items.push(item);
    const { listener, rootContextId } = queue;
    if (listener !== undefined) this.post(() => listener.queueReady(rootContextId, token));
    return Status.Ok;
  }

  dequeue(token: number): { status: Status; item?: Uint8Array } {
    const queue = this.queues.get(token);
    if (queue === undefined) return { status: Status.NotFound };
    const item = queue.items.shift();
    return item === undefined ? { status: Status.Empty } : { status: Status.Ok, item };
  }
}
