// Read-only views, for assertions, of what a stream sent on: the request as the upstream received
// it, the response as the client received it.

import { textFromBytes } from "./binary-string.ts";
import type { Headers } from "./header-map.ts";
import type { ForwardedMessage } from "./http-direction.ts";

export class HttpMessage {
  constructor(private readonly message: ForwardedMessage) {}

  get headers(): Headers {
    return this.message.headers;
  }

  get body(): Uint8Array {
    return this.message.body.contents();
  }

  get bodyText(): string {
    return textFromBytes(this.body);
  }

  /** The body parsed as JSON; throws if it is not JSON. */
  json(): unknown {
    return JSON.parse(this.bodyText);
  }

  get trailers(): Headers | undefined {
    return this.message.trailers;
  }

  /** Whether the whole message (to end of stream) went on. */
  get ended(): boolean {
    return this.message.ended;
  }
}

export class HttpResponse extends HttpMessage {
  constructor(
    message: ForwardedMessage,
    /** "upstream": the upstream's response passed through the filter; "local": a local reply. */
    readonly source: "upstream" | "local",
  ) {
    super(message);
  }

  get status(): number {
    return Number(this.headers.get(":status"));
  }
}
