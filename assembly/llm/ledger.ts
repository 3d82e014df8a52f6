// What each identity spent, kept in Envoy's shared data so that every worker of the sidecar adds to
// the same rows and a reloaded VM keeps them:
//   llm:rows                         the row names, one per line (at most max_usage_rows)
//   llm:u:{spiffe-id}|{provider}|{model}   "{requests} {input} {cached} {cache_write} {output} {cost_nanousd}"
//   llm:b:{spiffe-id}                "{window_start_s} {tokens} {cost_nanousd}": the budget window
// Writes use the value's cas, so two workers recording at once both land.
import { getSharedData, setSharedData, SharedValue } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { decimal } from "../util/ascii";
import { Budget, LlmConfig } from "./config";
import { TokenCounts } from "./usage";

const ROWS_KEY = "llm:rows";
const ROW_PREFIX = "llm:u:";
const BUDGET_PREFIX = "llm:b:";
const CAS_ATTEMPTS = 16;

/** One row of the usage summary: an identity's use of one model. */
export class UsageRow {
  constructor(public spiffeId: string, public provider: string, public model: string, public totals: i64[]) {}
}

/** The row's name: the identity, provider and model (none of which can hold "|": see the grammars). */
export function rowName(spiffeId: string, provider: string, model: string): string {
  return spiffeId + "|" + provider + "|" + model;
}

/**
 * Adds one call to its row; false when the row is new and the summary is full (the call is still
 * logged, and counted in its budget, but has no row or metrics).
 */
export function recordUsage(config: LlmConfig, name: string, counts: TokenCounts, costNanoUsd: i64): bool {
  if (!ensureRow(config, name)) return false;
  const added: i64[] = [1, counts.input, counts.cachedInput, counts.cacheWrite, counts.output, costNanoUsd];
  addToValue(ROW_PREFIX + name, added, 0, 0);
  return true;
}

/** Adds a call's tokens and cost to its identity's current budget window. */
export function chargeBudget(spiffeId: string, budget: Budget, nowSeconds: i64, counts: TokenCounts, costNanoUsd: i64): void {
  addToValue(BUDGET_PREFIX + spiffeId, [counts.total, costNanoUsd], windowStart(budget, nowSeconds), 1);
}

/** Seconds until the window ends if `spiffeId` has used up `budget` in it, else 0. */
export function budgetExhaustedFor(spiffeId: string, budget: Budget, nowSeconds: i64): i64 {
  const stored = getSharedData(BUDGET_PREFIX + spiffeId);
  if (stored === null) return 0;
  const values = numbersOf(stored.data);
  const start = windowStart(budget, nowSeconds);
  if (values.length != 3 || values[0] != start) return 0;
  const exhausted = (budget.maxTokens > 0 && values[1] >= budget.maxTokens) || (budget.maxCostNanoUsd > 0 && values[2] >= budget.maxCostNanoUsd);
  return exhausted ? max<i64>(1, start + budget.windowSeconds - nowSeconds) : 0;
}

/** Every row, in the order they were first recorded. */
export function usageRows(): UsageRow[] {
  const rows = new Array<UsageRow>();
  const index = getSharedData(ROWS_KEY);
  if (index === null) return rows;
  const names = String.UTF8.decode(index.data).split("\n");
  for (let i = 0; i < names.length; i++) {
    const parts = names[i].split("|");
    if (parts.length != 3) continue;
    const stored = getSharedData(ROW_PREFIX + names[i]);
    const totals = stored !== null ? numbersOf(stored.data) : [];
    if (totals.length == 6) rows.push(new UsageRow(parts[0], parts[1], parts[2], totals));
  }
  return rows;
}

function windowStart(budget: Budget, nowSeconds: i64): i64 {
  return nowSeconds - nowSeconds % budget.windowSeconds;
}

/** Lists the row in llm:rows unless it is there already; false when the list is full. */
function ensureRow(config: LlmConfig, name: string): bool {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const stored = getSharedData(ROWS_KEY);
    const text = stored !== null ? String.UTF8.decode(stored.data) : "";
    const names = text.length > 0 ? text.split("\n") : new Array<string>();
    if (names.includes(name)) return true;
    if (names.length >= config.maxUsageRows) return false;
    const updated = text.length > 0 ? text + "\n" + name : name;
    if (setSharedData(ROWS_KEY, Uint8Array.wrap(String.UTF8.encode(updated)), stored !== null ? stored.cas : 0) == Status.Ok) return true;
  }
  return false;
}

/**
 * Adds `added` to the numbers stored under `key`. With `prefixLength` 1 the first number is a
 * window start: a value of another window starts again from `window`.
 */
function addToValue(key: string, added: i64[], window: i64, prefixLength: i32): void {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const stored: SharedValue | null = getSharedData(key);
    let values = stored !== null ? numbersOf(stored.data) : new Array<i64>();
    if (values.length != added.length + prefixLength || (prefixLength == 1 && values[0] != window)) {
      values = new Array<i64>(added.length + prefixLength);
      if (prefixLength == 1) values[0] = window;
    }
    // Saturating: a total that would pass i64's limit stays at it rather than turning negative.
    for (let i = 0; i < added.length; i++) {
      const sum = values[i + prefixLength] + added[i];
      values[i + prefixLength] = sum < values[i + prefixLength] ? I64.MAX_VALUE : sum;
    }
    let text = "";
    for (let i = 0; i < values.length; i++) text += (i > 0 ? " " : "") + decimal(values[i]);
    if (setSharedData(key, Uint8Array.wrap(String.UTF8.encode(text)), stored !== null ? stored.cas : 0) == Status.Ok) return;
  }
}

function numbersOf(data: ArrayBuffer): i64[] {
  const parts = String.UTF8.decode(data).split(" ");
  const values = new Array<i64>(parts.length);
  for (let i = 0; i < parts.length; i++) values[i] = I64.parseInt(parts[i]);
  return values;
}
