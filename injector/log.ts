// Structured logs (pino, one JSON object a line). Exchange log lines are built field by field from
// values that are never secret; the redaction list is a second line of defence should a credential
// or token ever be passed to a log call by mistake.
import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

const REDACTED_PATHS = [
  "credentials", "*.credentials", "token", "*.token", "jwt", "*.jwt", "jwtSvid", "*.jwtSvid",
  "authorization", "*.authorization", "headers.authorization", "*.headers.authorization",
  "WebIdentityToken", "*.WebIdentityToken", "subject_token", "*.subject_token", "client_assertion", "*.client_assertion",
  "privateKey", "*.privateKey",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component: "credential-injector" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
  };
  return destination ? pino(options, destination) : pino(options);
}
