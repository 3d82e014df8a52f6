// Structured logs (pino, one JSON object a line) on stderr, so stdout carries only the
// "listening on" line launchers wait for. Log lines are built field by field from names, numbers
// and SPIFFE IDs, never from a request body; the redaction list is a second line of defence
// should a value or a token ever reach a log call by mistake.
import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

const REDACTED_PATHS = [
  "value", "*.value", "values", "*.values", "secrets", "*.secrets", "body", "*.body",
  "authorization", "*.authorization", "headers.authorization", "*.headers.authorization",
  "token", "*.token", "jwt", "*.jwt", "dek", "*.dek", "key", "*.key", "password", "*.password",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component: "hexr-vault" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
  };
  return pino(options, destination ?? pino.destination({ dest: 2, sync: true }));
}
