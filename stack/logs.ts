// The output of one part of the stack across all of its runs (a restart keeps what came before),
// optionally copied live to a file so `npm start` users can tail it.
import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { RunningProcess } from "../support/processes.ts";

export class LogSink {
  private readonly runs: RunningProcess[] = [];

  constructor(private readonly file?: string) {
    if (file) mkdirSync(path.dirname(file), { recursive: true });
  }

  /** Follows `process` from now on; returns it for chaining. */
  attach(process: RunningProcess): RunningProcess {
    this.runs.push(process);
    if (this.file) {
      const file = this.file;
      appendFileSync(file, process.output()); // what it wrote while starting
      const copy = (chunk: Buffer) => appendFileSync(file, chunk);
      process.child.stdout?.on("data", copy);
      process.child.stderr?.on("data", copy);
    }
    return process;
  }

  /** Everything every run wrote, in order. */
  text(): string {
    return this.runs.map((run) => run.output()).join("");
  }
}
