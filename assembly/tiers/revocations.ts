// The revocations this Envoy knows, kept where every VM sees them and a reloaded VM finds them
// (shared data, not VM memory): an entry stored before a revocation that covers its key is never
// served from L1 or L2, whichever VM stored it and whether or not any VM still indexes it.
//   one line per revocation, "{revoked_at_s} {kind} {key prefix}\n", oldest first, where kind is
//   "R" for an admin's revocation (the identities are also refused for a while: `denies`) and "G"
//   for a gap in the log (only what was stored before is distrusted)
// A revocation is dropped once it is older than the longest credential lifetime: nothing stored
// before it can still be servable then.
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { decimal, decimalEnd, scanDecimal } from "../util/ascii";
import { ALL_CREDENTIALS_PREFIX, REVOCATIONS_KEY } from "./keys";

/** The longest lifetime of any credential a provider issues (AWS role sessions: 12 h). */
const LONGEST_CREDENTIAL_S: i64 = 43_200;
/** Past this many, the revocations collapse into one of everything stored before the newest. */
const MAX_RECORDS = 512;
const CAS_ATTEMPTS = 8;

export class Revocation {
  constructor(public prefix: string, public atSeconds: i64, public refuses: bool) {}
}

export class Revocations {
  private records: Revocation[] = [];
  /** The cas of the shared value this copy was read from. */
  private loadedCas: u32 = 0;
  /**
   * Entries stored before this (epoch s) are not served at all: the revocation log has not been
   * readable for too long, so revocations may have been missed. 0: no such bound.
   */
  notBeforeSeconds: i64 = 0;

  /** Whether the entry stored at `storedAt` under `key` must not be served. */
  revokes(key: string, storedAt: i64): bool {
    if (storedAt < this.notBeforeSeconds) return true;
    const records = this.records;
    for (let i = 0; i < records.length; i++) {
      if (storedAt <= records[i].atSeconds && key.startsWith(records[i].prefix)) return true;
    }
    return false;
  }

  /**
   * Whether `key`'s identity was revoked by an admin less than `forSeconds` ago: it is refused
   * outright then, from every tier, as the injector refuses it (a credential minted in the moment
   * before the injector learned of the revocation must not be served either).
   */
  refuses(key: string, nowSeconds: i64, forSeconds: i64): bool {
    const records = this.records;
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      if (record.refuses && nowSeconds < record.atSeconds + forSeconds && key.startsWith(record.prefix)) return true;
    }
    return false;
  }

  /** Takes up what other VMs of this Envoy recorded (read once per tick; cheap when nothing changed). */
  refresh(): void {
    const stored = getSharedData(REVOCATIONS_KEY);
    if (stored === null || stored.cas == this.loadedCas) return;
    this.records = parse(stored.data);
    this.loadedCas = stored.cas;
  }

  /** Records a revocation for every VM of this Envoy, from `atSeconds` back; `refuses`: an admin's. */
  add(prefix: string, atSeconds: i64, refuses: bool): void {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const stored = getSharedData(REVOCATIONS_KEY);
      const records = stored !== null ? parse(stored.data) : new Array<Revocation>();
      const kept = new Array<Revocation>();
      for (let i = 0; i < records.length; i++) {
        if (records[i].atSeconds + LONGEST_CREDENTIAL_S >= atSeconds) kept.push(records[i]);
      }
      kept.push(new Revocation(prefix, atSeconds, refuses));
      const merged = kept.length > MAX_RECORDS ? [new Revocation(ALL_CREDENTIALS_PREFIX, atSeconds, false)] : kept;
      // cas 0 writes unconditionally: only when no revocation was ever recorded in this Envoy.
      if (setSharedData(REVOCATIONS_KEY, serialize(merged), stored !== null ? stored.cas : 0) == Status.Ok) {
        this.records = merged;
        return;
      }
    }
    // Lost every race: keep it in this VM at least; the other writers' lists arrive on the next tick.
    this.records.push(new Revocation(prefix, atSeconds, refuses));
  }
}

function serialize(records: Revocation[]): Uint8Array {
  let text = "";
  for (let i = 0; i < records.length; i++) {
    text += decimal(records[i].atSeconds) + (records[i].refuses ? " R " : " G ") + records[i].prefix + "\n";
  }
  return Uint8Array.wrap(String.UTF8.encode(text));
}

/** Lines that do not parse are skipped: the value is written only by this filter. */
function parse(data: ArrayBuffer): Revocation[] {
  const records = new Array<Revocation>();
  const base = changetype<usize>(data);
  const size = data.byteLength;
  let at = 0;
  while (at < size) {
    let end = at;
    while (end < size && load<u8>(base + <usize>end) != 0x0a) end++;
    const revokedAt = scanDecimal(base, at, end);
    const kindAt = decimalEnd + 1;
    const prefixStart = kindAt + 2;
    if (revokedAt >= 0 && prefixStart < end && load<u8>(base + <usize>decimalEnd) == 0x20 && load<u8>(base + <usize>(kindAt + 1)) == 0x20) {
      const prefix = String.UTF8.decodeUnsafe(base + <usize>prefixStart, <usize>(end - prefixStart));
      records.push(new Revocation(prefix, revokedAt, load<u8>(base + <usize>kindAt) == 0x52)); // "R"
    }
    at = end + 1;
  }
  return records;
}
