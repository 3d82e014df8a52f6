// hexrAgent(): the agent context of a function (AsyncLocalStorage), the process-context marker
// file the PID mapper reads, and the agent's `resources`, enforced locally before any exchange.
import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CredentialError, HexrError } from "./errors.ts";

export interface HexrAgentConfig {
  /** The agent's name, as in its SPIFFE ID (spiffe://{td}/agent/{tenant}/{name}/{role}). */
  name: string;
  tenant: string;
  /** The process's role; default HEXR_PROCESS_ROLE, else "main". */
  role?: string;
  /** e.g. "crewai", "langchain"; default "custom". */
  framework?: string;
  /**
   * The services this agent may use, e.g. ["aws_s3:read", "gcp_bigquery"]. hexrTool() for a
   * service not listed rejects with CredentialError (403) before any network call. Undefined: not
   * restricted locally (the sidecar and policy still decide).
   */
  resources?: readonly string[];
}

export interface AgentContext {
  readonly name: string;
  readonly tenant: string;
  readonly role: string;
  readonly framework: string;
  readonly resources: readonly string[] | undefined;
  /** Where the marker file was written. */
  readonly markerFile: string;
}

export const DEFAULT_CONTEXT_DIR = "/tmp/hexr-context";
const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;

const storage = new AsyncLocalStorage<AgentContext>();

/** The agent context of the running code, if it runs inside a hexrAgent() function. */
export function currentAgent(): AgentContext | undefined {
  return storage.getStore();
}

function segment(value: string | undefined, what: string): string {
  if (value === undefined || !SEGMENT.test(value) || value === "." || value === "..") {
    throw new HexrError(`hexrAgent: '${what}' must be 1 to 128 of A-Za-z0-9._-`, { type: "ConfigurationError" });
  }
  return value;
}

/** The marker's content: who this process is; never a secret. */
export function markerContent(context: AgentContext): Record<string, unknown> {
  return {
    agent_name: context.name,
    process_role: context.role,
    tenant: context.tenant,
    framework: context.framework,
    pid: process.pid,
    resources: context.resources ?? null,
  };
}

/** Writes {dir}/{agent}-{role}.json atomically (a temporary file renamed over it). */
export function writeMarker(context: AgentContext): void {
  mkdirSync(path.dirname(context.markerFile), { recursive: true });
  const temporary = `${context.markerFile}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(markerContent(context), null, 2) + "\n", { mode: 0o644 });
  renameSync(temporary, context.markerFile);
}

export function agentContext(config: HexrAgentConfig, env: NodeJS.ProcessEnv = process.env): AgentContext {
  const name = segment(config.name, "name");
  const tenant = segment(config.tenant, "tenant");
  const role = segment(config.role ?? (env.HEXR_PROCESS_ROLE || "main"), "role");
  const dir = env.HEXR_CONTEXT_DIR || DEFAULT_CONTEXT_DIR;
  if (config.resources !== undefined && (!Array.isArray(config.resources) || config.resources.some((r) => typeof r !== "string"))) {
    throw new HexrError("hexrAgent: 'resources' must be a list of service names", { type: "ConfigurationError" });
  }
  return {
    name,
    tenant,
    role,
    framework: config.framework ?? "custom",
    resources: config.resources ? Object.freeze([...config.resources]) : undefined,
    markerFile: path.join(dir, `${name}-${role}.json`),
  };
}

/**
 * Wraps `fn` as an agent: each call writes the marker file and runs `fn` with the agent context,
 * which hexrTool() reads (through AsyncLocalStorage, so it follows awaits and callbacks).
 *
 *   const research = hexrAgent({ name: "content-crew", tenant: "acme-corp", resources: ["gcp_bigquery:read"] },
 *     async (topic: string) => { const bq = await hexrTool("gcp_bigquery"); ... });
 *   await research("llms");
 */
export function hexrAgent<A extends unknown[], R>(config: HexrAgentConfig, fn: (...args: A) => R): (...args: A) => R {
  const context = agentContext(config);
  return (...args: A): R => {
    writeMarker(context);
    return storage.run(context, () => fn(...args));
  };
}

/** The service part of a resources entry: "aws_s3:read" → "aws_s3". */
export function resourceService(entry: string): string {
  const colon = entry.indexOf(":");
  return colon < 0 ? entry : entry.slice(0, colon);
}

/** Rejects a service the running agent's resources do not list (403, the sidecar's own message). */
export function checkResources(service: string, region: string | undefined, context: AgentContext | undefined = currentAgent()): void {
  if (!context?.resources) return;
  if (context.resources.some((entry) => resourceService(entry) === service)) return;
  throw new CredentialError("the service is not in this agent's resources", { status: 403, service, region });
}
