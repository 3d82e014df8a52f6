// The exchanges this injector is configured for; a provider without a config section is absent.
import { LLM, type Provider } from "../../contract/index.ts";
import type { InjectorConfig } from "../config.ts";
import { createLogger, type Logger } from "../log.ts";
import type { CloudTokenMinter } from "../oidc/cloud-tokens.ts";
import { AwsExchange } from "./aws.ts";
import { AzureExchange } from "./azure.ts";
import { GcpExchange } from "./gcp.ts";
import { VaultKeyExchange } from "./llm.ts";
import type { CloudExchange } from "./provider.ts";

/**
 * `tokens` mints what each cloud sees; the agent's own JWT-SVID never reaches a cloud provider.
 * The llm provider mints nothing: it reads the API key from Hexr Vault as the agent (providers/llm.ts).
 */
export function createExchanges(
  config: InjectorConfig,
  tokens: CloudTokenMinter,
  options: { logger?: Logger; clock?: () => number } = {},
): Map<Provider, CloudExchange> {
  const exchanges = new Map<Provider, CloudExchange>();
  if (config.aws) exchanges.set("aws", new AwsExchange(config.aws, tokens));
  if (config.gcp) exchanges.set("gcp", new GcpExchange(config.gcp, tokens));
  if (config.azure) exchanges.set("azure", new AzureExchange(config.azure, tokens, config.extra_services));
  if (config.llm) exchanges.set(LLM.keyProvider, new VaultKeyExchange(config.llm, options.logger ?? createLogger(config.log_level), options.clock));
  return exchanges;
}
