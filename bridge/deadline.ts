// Every Valkey command the bridge sends is bounded, so a hung Valkey costs at most the command timeout
// before the caller gets 503.
import { ValkeyUnavailableError } from "./errors.ts";

/** Settles with the operation, or rejects with ValkeyUnavailableError after ms; every Valkey error becomes one too. */
export function withDeadline<T>(operation: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ValkeyUnavailableError(`no reply within ${ms} ms`)), ms);
    operation.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: Error) => {
        clearTimeout(timer);
        reject(error instanceof ValkeyUnavailableError ? error : new ValkeyUnavailableError(error.message));
      },
    );
  });
}
