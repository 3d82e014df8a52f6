// Writes assembly/contract.ts, the filter's copy of contract/contract.json as AssemblyScript
// constants (AssemblyScript cannot read JSON at compile time). `npm run build` runs it first, so
// the filter can never drift from the contract the injector and the bridge read at run time.
import { writeFileSync } from "node:fs";
import { CONTRACT, expandCharClass } from "../contract/index.ts";

const OUTPUT = new URL("../assembly/contract.ts", import.meta.url);
const LLM_OUTPUT = new URL("../assembly/llm/contract.ts", import.meta.url);

const { grammar, keys, headers, errors } = CONTRACT;

/** One bit per character class; util/ascii.ts tests a character against them with one load. */
const CLASSES: Record<string, string> = {
  ServiceFirst: grammar.service.name_first,
  ServiceRest: grammar.service.name_rest,
  Region: grammar.region.chars,
  TrustDomain: grammar.trust_domain.chars,
  PathSegment: grammar.path_segment.chars,
  LlmModel: grammar.llm_model.chars,
};

function charTable(): number[] {
  const table = new Array<number>(128).fill(0);
  Object.values(CLASSES).forEach((spec, bit) => {
    for (const c of expandCharClass(spec)) table[c.charCodeAt(0)] |= 1 << bit;
  });
  return table;
}

const str = (value: string) => JSON.stringify(value);
const bytesOf = (text: string) => [...Buffer.from(text, "utf8")].join(", ");
/**
 * A list of names as one UTF-8 string with "," between them, split into strings at start
 * (util/ascii.ts, namesOf): as string literals (UTF-16, a header each) they would take twice the
 * bytes and more.
 */
const list = (values: readonly string[]) => {
  if (values.length == 0) return "[]";
  if (values.some((value) => value.includes(",")) || values.join("") == "") throw new Error(`not a list of names: ${values}`);
  const joined = values.join(",");
  return `namesOf(memory.data<u8>([${bytesOf(joined)}]), ${Buffer.byteLength(joined)})`;
};
const azureServices = Object.keys(CONTRACT.azure_resources).filter((key) => !key.startsWith("$"));
const headerConstant = (name: string) => "HEADER_" + name.toUpperCase();
const llmProviders = Object.keys(CONTRACT.llm.providers);

const source = `// Generated from contract/contract.json by scripts/generate-contract.ts (npm run build). Do not edit.
import { namesOf } from "./util/ascii";

export const PROVIDERS: string[] = ${list(CONTRACT.providers)};
export const CATALOG: string[] = ${list(CONTRACT.catalog)};
/** Indexed like PROVIDERS. */
export const DEFAULT_REGIONS: string[] = ${list(CONTRACT.providers.map((p) => CONTRACT.default_regions[p]))};
/**
 * The regions each provider serves, indexed like PROVIDERS: each list is one UTF-8 string with
 * "," between the names, in static memory (as string literals the lists would double the size).
 */
export const REGIONS_AT: usize[] = [${CONTRACT.providers.map((p) => `memory.data<u8>([${bytesOf(CONTRACT.regions[p].join(","))}])`).join(", ")}];
export const REGIONS_SIZE: i32[] = [${CONTRACT.providers.map((p) => Buffer.byteLength(CONTRACT.regions[p].join(","))).join(", ")}];

/** Azure services and their Entra ID resources, side by side. */
export const AZURE_RESOURCE_SERVICES: string[] = ${list(azureServices)};
export const AZURE_RESOURCES: string[] = ${list(azureServices.map((service) => CONTRACT.azure_resources[service]))};

export const SERVICE_SEPARATOR = ${str(grammar.service.separator)};
export const SERVICE_NAME_MAX = ${grammar.service.name_max};
export const REGION_MIN = ${grammar.region.min};
export const REGION_MAX = ${grammar.region.max};
export const TRUST_DOMAIN_MAX = ${grammar.trust_domain.max};
export const PATH_SEGMENT_MAX = ${grammar.path_segment.max};
export const LLM_MODEL_MAX = ${grammar.llm_model.max};
export const PATH_SEGMENT_FORBIDDEN: string[] = ${list(grammar.path_segment.forbidden ?? [])};
export const SPIFFE_SCHEME = ${str(grammar.agent_spiffe_id.scheme)};
export const AGENT_KIND = ${str(grammar.agent_spiffe_id.kind)};
export const AGENT_SPIFFE_ID_MAX = ${grammar.agent_spiffe_id.max};

export const CREDENTIAL_KEY_PREFIX = ${str(keys.credential_prefix)};
export const KEY_SEPARATOR = ${str(keys.separator)};
export const LOCK_KEY_PREFIX = ${str(keys.lock_prefix)};
export const KEY_MAX_BYTES = ${keys.max_bytes};

/** Hexr Vault's paths (docs/vault-api.md): the vault door forwards requests under them. */
export const VAULT_SECRETS_PATH = ${str(CONTRACT.vault.secrets_path)};
export const VAULT_AUDIT_PATH = ${str(CONTRACT.vault.audit_path)};

/** The provider of the services whose credential is an API key: served through the LLM route only (llm/). */
export const LLM_KEY_PROVIDER = ${str(CONTRACT.llm.key_provider)};

/** Indexed like Tier in filter/metrics.ts: the values of the cache header. */
export const CACHE_TIERS: string[] = ${list(CONTRACT.cache_tiers)};

/** Indexed like ErrorType in filter/errors.ts. */
export const ERROR_TYPE_NAMES: string[] = ${list(errors.types)};

${Object.entries(headers).map(([name, value]) => `export const ${headerConstant(name)} = ${str(value)};`).join("\n")}

export const enum CharClass {
${Object.keys(CLASSES).map((name, bit) => `  ${name} = ${1 << bit},`).join("\n")}
}
/** ASCII code → the CharClass bits it belongs to. */
export const CHAR_CLASSES: usize = memory.data<u8>([${charTable().join(", ")}]);
`;

writeFileSync(OUTPUT, source);

// The LLM filter's facts in a file of their own: module-level arrays are built at start even where
// nothing reads them, so the exchange filter, which never does, does not carry them.
const llmSource = `// Generated from contract/contract.json by scripts/generate-contract.ts (npm run build). Do not edit.
import { namesOf } from "../util/ascii";

/** The LLM route (llm/): its paths, and per provider (indexed alike) its service, auth header and endpoints. */
export const LLM_PATH = ${str(CONTRACT.llm.path)};
export const LLM_USAGE_PATH = ${str(CONTRACT.llm.usage_path)};
/** The counts of a usage row, in the order the ledger keeps them (ledger.ts, recordUsage). */
export const LLM_USAGE_COUNTS: string[] = ${list(CONTRACT.llm.usage_counts)};
export const LLM_PROVIDERS: string[] = ${list(llmProviders)};
export const LLM_SERVICES: string[] = ${list(llmProviders.map((p) => CONTRACT.llm.providers[p].service))};
export const LLM_AUTH_HEADERS: string[] = ${list(llmProviders.map((p) => CONTRACT.llm.providers[p].auth_header))};
export const LLM_AUTH_PREFIXES: string[] = ${list(llmProviders.map((p) => CONTRACT.llm.providers[p].auth_prefix))};
/** Each provider's endpoints, "|"-separated; "{deployment}" stands for one path segment. */
export const LLM_ENDPOINTS: string[] = ${list(llmProviders.map((p) => CONTRACT.llm.providers[p].endpoints.join("|")))};
export const LLM_AGENT_KEY_HEADERS: string[] = ${list(CONTRACT.llm.agent_key_headers)};
export const LLM_KEY_FIELD = ${str(CONTRACT.llm.key_credentials.api_key)};
export const LLM_MODELS_FIELD = ${str(CONTRACT.llm.key_credentials.models)};

`;

writeFileSync(LLM_OUTPUT, llmSource);
