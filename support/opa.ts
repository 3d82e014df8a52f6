// The real OPA server on loopback, serving the project's Rego policies (policy/) over its REST API.
import path from "node:path";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { projectRoot, tools } from "./tools.ts";

export interface OpaServer {
  port: number;
  url: string;
  /** SIGSTOP: OPA keeps its socket open but answers nothing, like a hung policy engine. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface StartOpaOptions {
  /** Policy and data directory (default policy/); *_test.rego files are not loaded. */
  policyDir?: string;
  port?: number;
}

/**
 * How OPA is started everywhere (tests and the local stack): loopback only, no version check
 * (it would call out to the internet), and without the policies' own unit tests.
 */
export function opaProcessSpec(port: number, policyDir = path.join(projectRoot, "policy")): ProcessSpec {
  return {
    name: "opa",
    command: tools.opa(),
    args: ["run", "--server", "--addr", `127.0.0.1:${port}`, "--skip-version-check", "--log-level", "error", "--ignore", "*_test.rego", policyDir],
    ready: { url: `http://127.0.0.1:${port}/health` },
    timeoutMs: 30_000,
  };
}

// freePort() can race with another process taking the port before OPA binds it.
const BIND_ATTEMPTS = 3;

export async function startOpa(options: StartOpaOptions = {}): Promise<OpaServer> {
  const policyDir = options.policyDir ?? path.join(projectRoot, "policy");
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      const process = await startProcess(opaProcessSpec(port, policyDir));
      return handle(process, port);
    } catch (error) {
      if (options.port !== undefined || attempt >= BIND_ATTEMPTS) throw error;
    }
  }
}

function handle(process: RunningProcess, port: number): OpaServer {
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pause: () => process.child.kill("SIGSTOP"),
    resume: () => process.child.kill("SIGCONT"),
    async stop() {
      process.child.kill("SIGCONT"); // a paused server cannot act on SIGTERM
      await process.stop();
    },
  };
}
