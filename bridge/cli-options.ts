// Command-line flags, each with an environment variable as fallback (flags win).
import { parseArgs } from "node:util";
import { DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_VALKEY_USER, type BridgeOptions } from "./server.ts";
import type { ValkeyNode } from "./valkey-connection.ts";
import { DEFAULT_METRICS_HOST, DEFAULT_METRICS_PORTS } from "../service/metrics.ts";

export const DEFAULT_PORT = 15090;
const DEFAULT_VALKEY = "redis://127.0.0.1:6379";

export const USAGE = `usage: tsx bridge/main.ts [options]
  --port N                     listen port, 0 = any free one   (HEXR_BRIDGE_PORT, default ${DEFAULT_PORT})
  --host ADDRESS               listen address                   (HEXR_BRIDGE_HOST, default 127.0.0.1)
  --tls-cert PATH              the bridge's X.509-SVID (PEM)    (HEXR_BRIDGE_TLS_CERT, required)
  --tls-key PATH               its private key (PEM)            (HEXR_BRIDGE_TLS_KEY, required)
  --trust-bundle PATH          CA certificates callers' certificates must chain to (HEXR_BRIDGE_TRUST_BUNDLE, required)
  --access-file PATH           who may call, for what (JSON)    (HEXR_BRIDGE_ACCESS_FILE, required)
  --valkey URL                 standalone Valkey                (HEXR_BRIDGE_VALKEY, default ${DEFAULT_VALKEY})
  --cluster H:P,H:P,...        Valkey cluster seed nodes        (HEXR_BRIDGE_CLUSTER)
  --valkey-user NAME           Valkey ACL user                  (HEXR_BRIDGE_VALKEY_USER, default ${DEFAULT_VALKEY_USER})
  --valkey-password-file PATH  that user's password (required)  (HEXR_BRIDGE_VALKEY_PASSWORD_FILE)
  --valkey-tls-ca PATH         TLS to Valkey, checked against this CA; the bridge's certificate is its client certificate
                                                                (HEXR_BRIDGE_VALKEY_TLS_CA; use rediss:// with --valkey)
  --key-file PATH              AES-256 key file (required)      (HEXR_BRIDGE_KEY_FILE)
  --create-key-file            create the key file with a random key if absent (local development)
  --command-timeout-ms N       bound on every Valkey command    (HEXR_BRIDGE_COMMAND_TIMEOUT_MS, default ${DEFAULT_COMMAND_TIMEOUT_MS})
  --metrics-port N             serve GET /metrics (Prometheus) over plain HTTP on this port; off unless given
                                                                (HEXR_BRIDGE_METRICS_PORT; ${DEFAULT_METRICS_PORTS.bridge} by convention, 0 = any free one)
  --metrics-host ADDRESS       the metrics listener's address   (HEXR_BRIDGE_METRICS_HOST, default ${DEFAULT_METRICS_HOST})`;

export interface CliOptions extends BridgeOptions {
  createKeyFile: boolean;
}

export function parseCliOptions(argv: string[], env: NodeJS.ProcessEnv): CliOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "trust-bundle": { type: "string" },
      "access-file": { type: "string" },
      valkey: { type: "string" },
      cluster: { type: "string" },
      "valkey-user": { type: "string" },
      "valkey-password-file": { type: "string" },
      "valkey-tls-ca": { type: "string" },
      "key-file": { type: "string" },
      "create-key-file": { type: "boolean" },
      "command-timeout-ms": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string" },
    },
  });
  const required = (flag: string, variable: string): string => {
    const value = values[flag as keyof typeof values] ?? env[variable];
    if (typeof value !== "string" || value === "") throw new Error(`--${flag} (or ${variable}) is required`);
    return value;
  };
  const cluster = values.cluster ?? env.HEXR_BRIDGE_CLUSTER;
  const valkey = values.valkey ?? env.HEXR_BRIDGE_VALKEY;
  if (cluster && valkey) throw new Error("--valkey and --cluster exclude each other");
  const keyFile = required("key-file", "HEXR_BRIDGE_KEY_FILE");
  const valkeyTlsCa = values["valkey-tls-ca"] ?? env.HEXR_BRIDGE_VALKEY_TLS_CA;
  const metricsPort = values["metrics-port"] ?? env.HEXR_BRIDGE_METRICS_PORT;
  const metricsHost = values["metrics-host"] ?? env.HEXR_BRIDGE_METRICS_HOST;
  if (metricsHost !== undefined && (metricsPort === undefined || metricsPort === "")) throw new Error("--metrics-host needs --metrics-port (or HEXR_BRIDGE_METRICS_PORT)");
  return {
    port: integer("--port", values.port ?? env.HEXR_BRIDGE_PORT, DEFAULT_PORT, 0, 65535),
    host: values.host ?? env.HEXR_BRIDGE_HOST ?? "127.0.0.1",
    tls: {
      cert: required("tls-cert", "HEXR_BRIDGE_TLS_CERT"),
      key: required("tls-key", "HEXR_BRIDGE_TLS_KEY"),
      trustBundle: required("trust-bundle", "HEXR_BRIDGE_TRUST_BUNDLE"),
    },
    access: required("access-file", "HEXR_BRIDGE_ACCESS_FILE"),
    ...(cluster ? { cluster: parseNodes(cluster) } : { valkey: valkey ?? DEFAULT_VALKEY }),
    valkeyUser: values["valkey-user"] ?? env.HEXR_BRIDGE_VALKEY_USER ?? DEFAULT_VALKEY_USER,
    valkeyPasswordFile: required("valkey-password-file", "HEXR_BRIDGE_VALKEY_PASSWORD_FILE"),
    ...(valkeyTlsCa ? { valkeyTlsCa } : {}),
    keyFile,
    createKeyFile: values["create-key-file"] ?? false,
    commandTimeoutMs: integer(
      "--command-timeout-ms",
      values["command-timeout-ms"] ?? env.HEXR_BRIDGE_COMMAND_TIMEOUT_MS,
      DEFAULT_COMMAND_TIMEOUT_MS,
      1,
      60_000,
    ),
    ...(metricsPort !== undefined && metricsPort !== ""
      ? { metrics: { host: metricsHost || DEFAULT_METRICS_HOST, port: integer("--metrics-port", metricsPort, DEFAULT_METRICS_PORTS.bridge, 0, 65535) } }
      : {}),
  };
}

function integer(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || value < min || value > max) throw new Error(`${flag} must be an integer from ${min} to ${max}`);
  return value;
}

function parseNodes(list: string): ValkeyNode[] {
  return list.split(",").map((entry) => {
    const match = /^(.+):([0-9]{1,5})$/.exec(entry.trim());
    if (!match || Number(match[2]) > 65535) throw new Error(`--cluster entry "${entry}" is not host:port`);
    return { host: match[1], port: Number(match[2]) };
  });
}
