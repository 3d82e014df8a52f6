// The services an agent may ask for: the catalog of the Hexr SDK (hexr-tool-sdk-reference),
// named {provider}_{service}, plus extras from configuration.

export const CATALOG: string[] = [
  "aws_s3", "aws_ec2", "aws_dynamodb", "aws_sqs", "aws_lambda", "aws_bedrock",
  "gcp_bigquery", "gcp_storage", "gcp_vertexai", "gcp_pubsub",
  "azure_storage", "azure_cosmosdb", "azure_openai",
];

export const PROVIDERS: string[] = ["aws", "gcp", "azure"];

/** The provider prefix of a well-formed service name, or "" when it has none we know. */
export function providerOf(service: string): string {
  const underscore = service.indexOf("_");
  if (underscore <= 0) return "";
  const provider = service.substring(0, underscore);
  return PROVIDERS.includes(provider) ? provider : "";
}

/** `{aws|gcp|azure}_{name}`, name of [a-z0-9_]: the shape that keeps a cache key unambiguous. */
export function isWellFormedServiceName(service: string): bool {
  if (service.length > 64 || providerOf(service).length == 0) return false;
  const rest = service.length - providerOf(service).length - 1;
  if (rest < 1) return false;
  for (let i = 0; i < service.length; i++) {
    const c = service.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x5f)) return false;
  }
  return true;
}

/** `^[a-z0-9-]{1,32}$` */
export function isValidRegion(region: string): bool {
  if (region.length < 1 || region.length > 32) return false;
  for (let i = 0; i < region.length; i++) {
    const c = region.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d)) return false;
  }
  return true;
}
