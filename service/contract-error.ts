// An error the injector or the vault answers with: the contract's body,
// {"error": {"type": T, "message": M}}, its status, and an outcome for the service's own log line
// and tests (never shown to the client). Messages are written by the service, never copied from a
// request, so they carry neither a token, a credential nor a secret's value.
import type { ErrorType } from "../contract/index.ts";

export class ContractError<Outcome extends string> extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly outcome: Outcome,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  body(): string {
    return JSON.stringify({ error: { type: this.type, message: this.message } });
  }
}
