// The services an agent may ask for and the regions it may name, by the contract's grammars:
// the catalog of the Hexr SDK plus services the operator configures.
import { LLM_KEY_PROVIDER, PROVIDERS, REGION_MAX, REGION_MIN, SERVICE_NAME_MAX, SERVICE_SEPARATOR } from "../contract";
import { allInClass, CharClass, isInClass } from "../util/ascii";

export { CATALOG, PROVIDERS } from "../contract";

/** The provider prefix of a service name, or "" when it has none we know. */
export function providerOf(service: string): string {
  const separator = service.indexOf(SERVICE_SEPARATOR);
  if (separator <= 0) return "";
  const provider = service.substring(0, separator);
  return PROVIDERS.includes(provider) ? provider : "";
}

/**
 * Whether the service's credential is an LLM provider's API key (llm_openai, ...): the LLM route
 * puts it in the provider call itself (llm/door.ts), and no door ever hands it to an agent.
 */
export function isProviderKeyService(service: string): bool {
  return providerOf(service) == LLM_KEY_PROVIDER;
}

/** {provider}_{name}: the shape every component accepts, so a key can never be ambiguous. */
export function isServiceName(service: string): bool {
  const provider = providerOf(service);
  if (provider.length == 0) return false;
  const start = provider.length + 1;
  const nameLength = service.length - start;
  if (nameLength < 1 || nameLength > SERVICE_NAME_MAX) return false;
  return isInClass(service.charCodeAt(start), CharClass.ServiceFirst) &&
    allInClass(service, start + 1, service.length, CharClass.ServiceRest);
}

export function isRegion(region: string): bool {
  return region.length >= REGION_MIN && region.length <= REGION_MAX &&
    allInClass(region, 0, region.length, CharClass.Region);
}
