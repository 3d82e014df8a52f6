// The services an agent may ask for: {provider}_{service} from the SDK reference, plus extras
// the operator configures.

export const PROVIDERS = ["aws", "gcp", "azure"] as const;
export type Provider = (typeof PROVIDERS)[number];

export const BUILT_IN_SERVICES: readonly string[] = [
  "aws_s3", "aws_ec2", "aws_dynamodb", "aws_sqs", "aws_lambda", "aws_bedrock",
  "gcp_bigquery", "gcp_storage", "gcp_vertexai", "gcp_pubsub",
  "azure_storage", "azure_cosmosdb", "azure_openai",
];

/** Same shape as the built-in names; no ':' so a service can never break the cache key. */
export const SERVICE_NAME = /^(aws|gcp|azure)_[a-z0-9][a-z0-9_-]{0,47}$/;

export const REGION = /^[a-z0-9-]{1,32}$/;

export class ServiceCatalog {
  private readonly services: ReadonlySet<string>;

  constructor(extraServices: readonly string[]) {
    this.services = new Set([...BUILT_IN_SERVICES, ...extraServices]);
  }

  has(service: string): boolean {
    return this.services.has(service);
  }
}

export function providerOf(service: string): Provider {
  return service.slice(0, service.indexOf("_")) as Provider;
}

/** "aws_dynamodb" → "dynamodb": the name after the provider prefix. */
export function serviceSuffix(service: string): string {
  return service.slice(service.indexOf("_") + 1);
}
