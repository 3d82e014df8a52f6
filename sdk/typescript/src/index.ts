// @hexr/sdk: cloud clients for an agent process, authenticated by its SPIFFE identity through the
// Hexr sidecar. See README.md.
export { hexrAgent, currentAgent, type HexrAgentConfig, type AgentContext, DEFAULT_CONTEXT_DIR } from "./agent.ts";
export { hexrTool, type ServiceClients, type ServiceOptions, type ToolOptions } from "./tool.ts";
export { awsCredentials, azureCredential, azureADTokenProvider, googleAuthClient, type CredentialOptions } from "./credentials.ts";
export {
  HexrClient, hexrClient, configure, DEFAULT_SIDECAR_URL, DEFAULT_REFRESH_BUFFER_SECONDS,
  type HexrClientOptions, type ExchangeAnswer, type Resolved, type AwsCredentialSet, type TokenCredentialSet, type SidecarAnswer,
} from "./client.ts";
export { HexrError, AuthenticationError, CredentialError, AccessDeniedError, SecretNotFoundError, type HexrErrorType } from "./errors.ts";
export { VaultClient, secretsBatch, AGENT_SCOPE, type VaultClientOptions, type PutOptions, type GetOptions, type Secrets } from "./vault.ts";
export {
  FileJwtSvidSource, NoJwtSvidSource, identityFromEnvironment, decodeJwtSvid, DEFAULT_JWT_AUDIENCE, type JwtSvid, type JwtSvidSource,
} from "./identity.ts";
export { WorkloadApiJwtSvidSource, type WorkloadApiOptions } from "./workload-api.ts";
export { isServiceName, isCatalogService, isRegion, isSecretName, parseAgentSpiffeId, type CatalogService, type Provider, type AgentSpiffeId } from "./grammar.ts";
export { SPAN_NAME, INSTRUMENTATION_NAME, VAULT_SPAN_PREFIX } from "./telemetry.ts";
export {
  hexrLlm, openaiClient, azureOpenaiClient, anthropicClient, llmUsage, costTree, svidFetch, llmErrorFromAnswer, BudgetExceededError, ProviderError, LLM_PROVIDERS, PLACEHOLDER_KEY,
  ANTHROPIC_VERSION, DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_AZURE_API_VERSION, DEFAULT_LLM_TIMEOUT_MS,
  type HexrLlmOptions, type LlmProvider, type OpenAIClientOptions, type AzureOpenAIClientOptions, type AnthropicClientOptions, type UsageRow,
} from "./llm.ts";
