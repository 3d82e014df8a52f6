// One stoppable, restartable part of the stack (Valkey, the bridge, OPA, moto, the injector),
// always on the same port so that whoever points at it finds it again after a restart.
import type { RunningProcess } from "../support/processes.ts";
import { LogSink } from "./logs.ts";

export interface Part {
  readonly name: string;
  readonly port: number;
  /** Where it is reached, e.g. http://127.0.0.1:PORT. */
  readonly url: string;
  readonly running: boolean;
  start(): Promise<void>;
  /** SIGTERM (the default) and wait for the exit; SIGKILL to kill it without a chance to clean up. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** The running process's id (memory readings of the soak run); undefined while stopped. */
  readonly pid: number | undefined;
  /** SIGSTOP: it keeps its sockets open but answers nothing, like a hung or partitioned service. */
  pause(): void;
  resume(): void;
  /** Everything it wrote to stdout/stderr, over every start. */
  logs(): string;
}

export interface PartSpec {
  name: string;
  port: number;
  url: string;
  /** Starts the process and resolves once it is ready (support/processes.ts startProcess). */
  launch(): Promise<RunningProcess>;
  logFile?: string;
}

export function createPart(spec: PartSpec): Part {
  const log = new LogSink(spec.logFile);
  let process: RunningProcess | undefined;
  return {
    name: spec.name,
    port: spec.port,
    url: spec.url,
    get running() {
      return process !== undefined;
    },
    get pid() {
      return process?.child.pid;
    },
    async start() {
      if (!process) process = log.attach(await spec.launch());
    },
    async stop(signal) {
      const running = process;
      process = undefined;
      running?.child.kill("SIGCONT"); // a stopped process cannot act on SIGTERM
      await running?.stop(signal);
    },
    pause() {
      if (!process) throw new Error(`${spec.name} is not running`);
      process.child.kill("SIGSTOP");
    },
    resume() {
      process?.child.kill("SIGCONT");
    },
    logs: () => log.text(),
  };
}
