// The cloud exchanges this injector is configured for; a provider without a config section is absent.
import type { Provider } from "../../contract/index.ts";
import type { InjectorConfig } from "../config.ts";
import { AwsExchange } from "./aws.ts";
import { AzureExchange } from "./azure.ts";
import { GcpExchange } from "./gcp.ts";
import type { CloudExchange } from "./provider.ts";

export function createExchanges(config: InjectorConfig): Map<Provider, CloudExchange> {
  const exchanges = new Map<Provider, CloudExchange>();
  if (config.aws) exchanges.set("aws", new AwsExchange(config.aws));
  if (config.gcp) exchanges.set("gcp", new GcpExchange(config.gcp));
  if (config.azure) exchanges.set("azure", new AzureExchange(config.azure, config.extra_services));
  return exchanges;
}
