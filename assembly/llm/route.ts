// Where an LLM request goes: {LLM_PATH}/{provider}{endpoint}[?query], with the provider and the
// endpoint from the contract (contract.json "llm"). Anything else is refused before it leaves, so
// an agent can reach only the provider APIs the route is for (no "..", no other paths).
import { LLM_ENDPOINTS, LLM_PATH, LLM_PROVIDERS } from "./contract";
import { isPathSegment } from "../input/spiffe-id";

const DEPLOYMENT = "{deployment}";

export class LlmRoute {
  constructor(
    /** Indexed like LLM_PROVIDERS. */
    public provider: i32,
    /** The contract's endpoint pattern, e.g. "/v1/chat/completions". */
    public endpoint: string,
    /** Azure OpenAI's deployment (the path names the model there), else "". */
    public deployment: string,
  ) {}

  get providerName(): string {
    return LLM_PROVIDERS[this.provider];
  }

  /** Chat and legacy completions: their streams carry usage only when asked (stream_options.include_usage). */
  get isCompletions(): bool {
    return this.endpoint.endsWith("/completions");
  }
}

/** The route of `path` (the :path header, query included), or null when it names no provider endpoint. */
export function parseLlmRoute(path: string): LlmRoute | null {
  const query = path.indexOf("?");
  const bare = query < 0 ? path : path.substring(0, query);
  if (!bare.startsWith(LLM_PATH + "/")) return null;
  const providerStart = LLM_PATH.length + 1;
  const providerEnd = bare.indexOf("/", providerStart);
  if (providerEnd < 0) return null;
  const provider = LLM_PROVIDERS.indexOf(bare.substring(providerStart, providerEnd));
  if (provider < 0) return null;
  const endpoint = bare.substring(providerEnd);
  const patterns = LLM_ENDPOINTS[provider].split("|");
  for (let i = 0; i < patterns.length; i++) {
    const deployment = matchEndpoint(patterns[i], endpoint);
    if (deployment !== null) return new LlmRoute(provider, patterns[i], deployment);
  }
  return null;
}

/** The deployment segment ("" when the pattern has none) if `endpoint` matches `pattern`, else null. */
function matchEndpoint(pattern: string, endpoint: string): string | null {
  const at = pattern.indexOf(DEPLOYMENT);
  if (at < 0) return pattern == endpoint ? "" : null;
  const before = pattern.substring(0, at);
  const after = pattern.substring(at + DEPLOYMENT.length);
  if (endpoint.length <= before.length + after.length || !endpoint.startsWith(before) || !endpoint.endsWith(after)) return null;
  const deployment = endpoint.substring(before.length, endpoint.length - after.length);
  return isPathSegment(deployment) ? deployment : null;
}
