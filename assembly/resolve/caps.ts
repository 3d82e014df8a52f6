// How many shared-data keys this Envoy has created for credentials, per identity and in all.
// ABI 0.2.1 cannot delete a shared-data key: every distinct credential an identity names (its
// entry, and its claim) keeps a key until Envoy restarts. So a miss that would create a key is
// refused once either count reaches its cap. The counts live in shared data (every worker sees
// them, and a reloaded VM keeps them) and are incremented with compare-and-swap.
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { ALL_KEYS_COUNT_KEY, identityKeyCountKey } from "../tiers/keys";
import { decimal, decimalValue } from "../util/ascii";

const CAS_ATTEMPTS = 8;

/** Whether `credential`'s identity, and this Envoy, may still create keys. */
export function admitsNewKey(credential: string, maxPerIdentity: i64, maxInAll: i64): bool {
  return count(identityKeyCountKey(credential)) < maxPerIdentity && count(ALL_KEYS_COUNT_KEY) < maxInAll;
}

/** Counts one key created for `credential` (its entry or its claim). */
export function countNewKey(credential: string): void {
  increment(identityKeyCountKey(credential));
  increment(ALL_KEYS_COUNT_KEY);
}

function count(key: string): i64 {
  const stored = getSharedData(key);
  if (stored === null) return 0;
  const value = decimalValue(stored.data);
  return value < 0 ? 0 : value;
}

function increment(key: string): void {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const stored = getSharedData(key);
    const current = stored !== null ? decimalValue(stored.data) : 0;
    const next = Uint8Array.wrap(String.UTF8.encode(decimal((current < 0 ? 0 : current) + 1)));
    // cas 0 writes unconditionally: only right when the key does not exist yet (first key ever).
    if (setSharedData(key, next, stored !== null ? stored.cas : 0) == Status.Ok) return;
  }
}
