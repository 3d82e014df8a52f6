// The LLM filter's section of the plugin configuration ("llm"): which providers this sidecar serves
// and which models each allows, the price table, the budgets, who may read everyone's usage, and
// the bounds. Read once at configuration; a bad section fails the plugin with the field's name.
//   "llm": {
//     "providers": {"openai": {"models": ["gpt-4o", ...]}, "anthropic": {}, "azure_openai": {...}},
//     "prices": {"gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10}},   USD per 1M tokens
//     "budgets": [{"spiffe_ids": "spiffe://td/agent/acme/*", "window_seconds": 3600,
//                  "max_tokens": 1000000, "max_cost_usd": 5}],
//     "admin_spiffe_ids": [...], "max_request_bytes": 1048576, "max_usage_rows": 4096
//   }
import { itemName, Reader } from "../input/config-reader";
import { parseSpiffeId } from "../input/spiffe-id";
import { JsonKind, JsonValue, parseJson } from "../util/json";
import { message } from "../util/message";
import { LLM_PROVIDERS } from "./contract";

/** A model's prices in nano-USD per token (= USD per million tokens × 1000). */
export class Price {
  constructor(public input: i64, public cachedInput: i64, public cacheWrite: i64, public output: i64) {}
}

/** A limit on what each identity it covers may use per window; 0 = no limit of that kind. */
export class Budget {
  constructor(
    /** An exact SPIFFE ID, or a prefix ending in "/*". */
    public pattern: string,
    public windowSeconds: i64,
    public maxTokens: i64,
    public maxCostNanoUsd: i64,
  ) {}

  covers(spiffeId: string): bool {
    const pattern = this.pattern;
    return pattern.endsWith("/*") ? spiffeId.startsWith(pattern.substring(0, pattern.length - 1)) : spiffeId == pattern;
  }
}

export class LlmConfig {
  /** Indexed like LLM_PROVIDERS: whether this sidecar serves the provider, and the models it allows ([] = any OPA grants). */
  served: bool[] = new Array<bool>(LLM_PROVIDERS.length);
  models: Array<string[]> = new Array<string[]>(LLM_PROVIDERS.length);
  priceModels: string[] = [];
  prices: Price[] = [];
  budgets: Budget[] = [];
  adminSpiffeIds: string[] = [];
  maxRequestBytes: i32 = 1_048_576;
  /** Usage rows (identity × provider × model) kept for the summary and metrics; more are logged only. */
  maxUsageRows: i32 = 4096;

  priceOf(model: string): Price | null {
    const index = this.priceModels.indexOf(model);
    return index < 0 ? null : this.prices[index];
  }

  /** The first budget that covers `spiffeId`, or null. */
  budgetOf(spiffeId: string): Budget | null {
    for (let i = 0; i < this.budgets.length; i++) if (this.budgets[i].covers(spiffeId)) return this.budgets[i];
    return null;
  }
}

export class LlmConfigResult {
  constructor(public config: LlmConfig | null, public error: string) {}
}

/** The "llm" section of the plugin configuration (the rest is the exchange filter's: input/config.ts). */
export function parseLlmConfig(bytes: ArrayBuffer): LlmConfigResult {
  const parsed = parseJson(String.UTF8.decode(bytes));
  const root = parsed.value;
  if (root === null || root.kind != JsonKind.Object) return new LlmConfigResult(null, message("configuration is not a JSON object"));
  const section = root.member("llm");
  if (section === null || section.kind != JsonKind.Object) return new LlmConfigResult(null, message("field 'llm' must be an object (the LLM filter's section)"));
  // Every field of the section is read: one no reader asks for is unknown, refused before any other problem.
  const config = new LlmConfig();
  const read = new Reader(section);
  read.section = message("llm.");
  readProviders(read.member(section, message("providers")), config, read);
  readPrices(read.member(section, message("prices")), config, read);
  readBudgets(read.member(section, message("budgets")), config, read);
  config.adminSpiffeIds = read.stringsField(section, message("admin_spiffe_ids"));
  for (let i = 0; i < config.adminSpiffeIds.length; i++) {
    if (parseSpiffeId(config.adminSpiffeIds[i]) === null) read.fail(itemName(message("admin_spiffe_ids"), i), message("must be an agent SPIFFE ID"));
  }
  config.maxRequestBytes = <i32>read.integerField(section, message("max_request_bytes"), config.maxRequestBytes, 1024, 16_777_216);
  config.maxUsageRows = <i32>read.integerField(section, message("max_usage_rows"), config.maxUsageRows, 1, 100_000);
  const unknown = read.unknownField();
  if (unknown !== null) return new LlmConfigResult(null, message("unknown field 'llm.") + unknown + "'");
  return read.error.length > 0 ? new LlmConfigResult(null, read.error) : new LlmConfigResult(config, "");
}

function readProviders(value: JsonValue | null, config: LlmConfig, read: Reader): void {
  for (let i = 0; i < LLM_PROVIDERS.length; i++) config.models[i] = [];
  if (value === null || value.kind != JsonKind.Object || value.keys.length == 0) {
    read.fail(message("providers"), message("must name at least one provider (") + LLM_PROVIDERS.join(", ") + ")");
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const name = value.keys[i];
    const field = message("providers.") + name;
    const index = LLM_PROVIDERS.indexOf(name);
    const provider = value.items[i];
    if (index < 0) {
      read.fail(field, message("is not a provider of the LLM route (") + LLM_PROVIDERS.join(", ") + ")");
    } else if (provider.kind != JsonKind.Object) {
      read.fail(field, message("must be an object {models?}"));
    } else {
      config.served[index] = true;
      config.models[index] = read.strings(provider.member("models"), field + ".models");
    }
  }
}

function readPrices(value: JsonValue | null, config: LlmConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Object) {
    read.fail(message("prices"), message("must be an object of model to {input, cached_input?, cache_write?, output} in USD per million tokens"));
    return;
  }
  for (let i = 0; i < value.keys.length; i++) {
    const field = message("prices.") + value.keys[i];
    const entry = value.items[i];
    if (entry.kind != JsonKind.Object) {
      read.fail(field, message("must be an object {input, cached_input?, cache_write?, output}"));
      continue;
    }
    const input = nanoUsdPerToken(entry.member("input"), field + ".input", -1, read);
    const output = nanoUsdPerToken(entry.member("output"), field + ".output", -1, read);
    const cached = nanoUsdPerToken(entry.member("cached_input"), field + ".cached_input", input, read);
    const write = nanoUsdPerToken(entry.member("cache_write"), field + ".cache_write", input, read);
    config.priceModels.push(value.keys[i]);
    config.prices.push(new Price(input, cached, write, output));
  }
}

/** USD per million tokens, at most 3 decimals, as nano-USD per token; `fallback` < 0: required. */
function nanoUsdPerToken(value: JsonValue | null, field: string, fallback: i64, read: Reader): i64 {
  if (value === null && fallback >= 0) return fallback;
  if (value === null || value.kind != JsonKind.Number || value.number < 0 || value.number > 1_000_000) {
    read.fail(field, message("must be a price in USD per million tokens (0 to 1000000)"));
    return 0;
  }
  const nanos = Math.round(value.number * 1000);
  if (Math.abs(nanos - value.number * 1000) > 1e-6) read.fail(field, message("must have at most 3 decimals"));
  return <i64>nanos;
}

function readBudgets(value: JsonValue | null, config: LlmConfig, read: Reader): void {
  if (value === null) return;
  if (value.kind != JsonKind.Array) {
    read.fail(message("budgets"), message("must be an array of {spiffe_ids, window_seconds, max_tokens?, max_cost_usd?}"));
    return;
  }
  for (let i = 0; i < value.items.length; i++) {
    const field = itemName(message("budgets"), i);
    const entry = value.items[i];
    if (entry.kind != JsonKind.Object) {
      read.fail(field, message("must be an object {spiffe_ids, window_seconds, max_tokens?, max_cost_usd?}"));
      continue;
    }
    const pattern = read.string(entry.member("spiffe_ids"), field + ".spiffe_ids", "");
    const valid = pattern.endsWith("/*") ? pattern.startsWith("spiffe://") : parseSpiffeId(pattern) !== null;
    if (!valid) {
      read.fail(field + ".spiffe_ids", message("must be an agent SPIFFE ID, or a prefix of one ending in /*"));
    }
    const window = read.integer(entry.member("window_seconds"), field + ".window_seconds", 0, 1, 31_536_000);
    if (entry.member("window_seconds") === null) read.fail(field + ".window_seconds", message("is required"));
    const maxTokens = read.integer(entry.member("max_tokens"), field + ".max_tokens", 0, 1, 1_000_000_000_000);
    const maxCost = entry.member("max_cost_usd") !== null ? nanoUsd(entry.member("max_cost_usd")!, field + ".max_cost_usd", read) : 0;
    if (maxTokens == 0 && maxCost == 0) read.fail(field, message("needs max_tokens or max_cost_usd"));
    config.budgets.push(new Budget(pattern, window, maxTokens, maxCost));
  }
}

function nanoUsd(value: JsonValue, field: string, read: Reader): i64 {
  if (value.kind != JsonKind.Number || value.number <= 0 || value.number > 1_000_000_000) {
    read.fail(field, message("must be an amount in USD above 0"));
    return 0;
  }
  return <i64>Math.round(value.number * 1e9);
}
