// During an outage every request fails the same way; one line per distinct error and interval is enough
// to see it without flooding the log.
import type { Logger } from "pino";

export type ThrottledLog = (fields: Record<string, unknown>, message: string) => void;

export function throttledErrorLog(log: Logger, intervalMs = 10_000, level: "error" | "warn" = "error"): ThrottledLog {
  const lastLogged = new Map<string, { at: number; suppressed: number }>();
  return (fields, message) => {
    const id = `${message}\n${String(fields.reason ?? "")}`;
    const now = Date.now();
    const entry = lastLogged.get(id);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    log[level](entry?.suppressed ? { ...fields, suppressed: entry.suppressed } : fields, message);
    lastLogged.set(id, { at: now, suppressed: 0 });
  };
}
