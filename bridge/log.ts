// Structured logs on stderr, so stdout carries only the "listening on" line that launchers wait for.
import { pino, type Logger } from "pino";

export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ name: "hexr-bridge", level }, pino.destination({ dest: 2, sync: true }));
}
