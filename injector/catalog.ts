// The services this injector serves: the contract's catalog plus the extras its operator
// configures. Names, providers and regions follow the contract's grammars (contract/index.ts).
import { CATALOG, providerOf, SERVICE_SEPARATOR } from "../contract/index.ts";

export { REGION_RULE } from "../contract/index.ts";

export class ServiceCatalog {
  private readonly services: ReadonlySet<string>;

  /** `extraServices` must already be valid service names (the config checks them). */
  constructor(extraServices: readonly string[]) {
    this.services = new Set([...CATALOG, ...extraServices]);
  }

  has(service: string): boolean {
    return this.services.has(service);
  }
}

/** "aws_dynamodb" → "dynamodb": the name after the provider prefix. */
export function serviceSuffix(service: string): string {
  return service.slice(providerOf(service).length + SERVICE_SEPARATOR.length);
}

