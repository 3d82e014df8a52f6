import type { IncomingHttpHeaders } from "node:http";

/** A header's value, or undefined when absent; Node already joins repeated custom headers with ", ". */
export function singleHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}
