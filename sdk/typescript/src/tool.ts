// hexrTool(service): an authenticated client of the provider's own SDK, for every service of the
// catalog, whose credentials refresh themselves through the sidecar (credentials.ts).
//
//   service         returns                                     Python SDK (boto3 / google-cloud / azure)
//   aws_s3          S3Client                                     boto3.client("s3")
//   aws_ec2         EC2Client                                    boto3.client("ec2")
//   aws_dynamodb    DynamoDBDocumentClient (native JS values)    boto3.resource("dynamodb")
//   aws_sqs         SQSClient                                    boto3.client("sqs")
//   aws_lambda      LambdaClient                                 boto3.client("lambda")
//   aws_bedrock     BedrockRuntimeClient                         boto3.client("bedrock-runtime")
//   gcp_bigquery    BigQuery                                     bigquery.Client()
//   gcp_storage     Storage                                      storage.Client()
//   gcp_vertexai    VertexAI (@google-cloud/vertexai)            aiplatform
//   gcp_pubsub      PubSub (topic(name).publishMessage())        pubsub_v1.PublisherClient()
//   azure_storage   BlobServiceClient                            BlobServiceClient()
//   azure_cosmosdb  CosmosClient                                 CosmosClient()
//   azure_openai    AzureOpenAI (azureADTokenProvider)           openai.AzureOpenAI()
//
// A service outside the catalog is refused (BadRequest): hexrTool cannot know which client it
// means. awsCredentials() / googleAuthClient() / azureCredential() give credentials for any
// service the sidecar serves (extra_services) to a client of your choice.
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import type { EC2Client, EC2ClientConfig } from "@aws-sdk/client-ec2";
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient, TranslateConfig } from "@aws-sdk/lib-dynamodb";
import type { SQSClient, SQSClientConfig } from "@aws-sdk/client-sqs";
import type { LambdaClient, LambdaClientConfig } from "@aws-sdk/client-lambda";
import type { BedrockRuntimeClient, BedrockRuntimeClientConfig } from "@aws-sdk/client-bedrock-runtime";
import type { BigQuery, BigQueryOptions } from "@google-cloud/bigquery";
import type { Storage, StorageOptions } from "@google-cloud/storage";
import type { VertexAI, VertexInit } from "@google-cloud/vertexai";
import type { ClientConfig as PubSubConfig, PubSub } from "@google-cloud/pubsub";
import type { BlobServiceClient, StoragePipelineOptions } from "@azure/storage-blob";
import type { CosmosClient, CosmosClientOptions } from "@azure/cosmos";
import type { AzureOpenAI } from "openai";
import { checkResources } from "./agent.ts";
import { checkRequest, hexrClient, type HexrClient } from "./client.ts";
import { awsCredentials, azureADTokenProvider, azureCredential, googleAuthClient, type CredentialOptions } from "./credentials.ts";
import { HexrError } from "./errors.ts";
import { isCatalogService, type CatalogService } from "./grammar.ts";

/** The catalog's cloud services: the llm_* ones are provider API keys, used by the sidecar's LLM route and never handed to an agent (hexrLlm, openaiClient). */
export type ToolService = Exclude<CatalogService, `llm_${string}`>;

function isToolService(service: string): service is ToolService {
  return isCatalogService(service) && !service.startsWith("llm_");
}

type AzureOpenAIOptions = NonNullable<ConstructorParameters<typeof AzureOpenAI>[0]>;

/** What hexrTool returns, per service. */
export interface ServiceClients {
  aws_s3: S3Client;
  aws_ec2: EC2Client;
  aws_dynamodb: DynamoDBDocumentClient;
  aws_sqs: SQSClient;
  aws_lambda: LambdaClient;
  aws_bedrock: BedrockRuntimeClient;
  gcp_bigquery: BigQuery;
  gcp_storage: Storage;
  gcp_vertexai: VertexAI;
  gcp_pubsub: PubSub;
  azure_storage: BlobServiceClient;
  azure_cosmosdb: CosmosClient;
  azure_openai: AzureOpenAI;
}

type Aws<C> = Omit<C, "credentials" | "region">;

/** The client options each service takes besides `region` (the SDK sets credentials and region). */
export interface ServiceOptions {
  aws_s3: Aws<S3ClientConfig>;
  aws_ec2: Aws<EC2ClientConfig>;
  aws_dynamodb: Aws<DynamoDBClientConfig> & { translateConfig?: TranslateConfig };
  aws_sqs: Aws<SQSClientConfig>;
  aws_lambda: Aws<LambdaClientConfig>;
  aws_bedrock: Aws<BedrockRuntimeClientConfig>;
  gcp_bigquery: Omit<BigQueryOptions, "authClient" | "credentials" | "keyFilename">;
  gcp_storage: Omit<StorageOptions, "authClient" | "credentials" | "keyFilename">;
  gcp_vertexai: Omit<VertexInit, "location" | "googleAuthOptions">;
  gcp_pubsub: Omit<PubSubConfig, "authClient" | "credentials" | "keyFilename">;
  /** accountUrl: https://{account}.blob.core.windows.net (or AZURE_STORAGE_ACCOUNT_URL). */
  azure_storage: { accountUrl?: string; pipelineOptions?: StoragePipelineOptions };
  /** endpoint: https://{account}.documents.azure.com (or AZURE_COSMOS_ENDPOINT). */
  azure_cosmosdb: Omit<CosmosClientOptions, "aadCredentials" | "key" | "tokenProvider" | "resourceTokens" | "permissionFeed" | "endpoint"> & { endpoint?: string };
  /** endpoint: https://{resource}.openai.azure.com (or AZURE_OPENAI_ENDPOINT); apiVersion (or OPENAI_API_VERSION). */
  azure_openai: Omit<AzureOpenAIOptions, "apiKey" | "azureADTokenProvider">;
}

export type ToolOptions<S extends ToolService> = ServiceOptions[S] & {
  /** Region of the credential and the client (default: the contract's default region of the provider). */
  region?: string;
  /** Default: the process's client (hexrClient()). */
  client?: HexrClient;
};

async function load<T>(specifier: string, service: string, loader: () => Promise<T>): Promise<T> {
  try {
    return await loader();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
      throw new HexrError(`${service} needs the optional peer dependency ${specifier}: npm install ${specifier}`, { type: "MissingDependency", service });
    }
    throw error;
  }
}

function gcpProject(options: { projectId?: string }): { projectId?: string } {
  const projectId = options.projectId ?? process.env.HEXR_GCP_PROJECT ?? process.env.GOOGLE_CLOUD_PROJECT;
  return projectId ? { projectId } : {};
}

function required(value: string | undefined, what: string, service: string): string {
  if (!value) throw new HexrError(`${service} needs ${what}`, { type: "ConfigurationError", service });
  return value;
}

type Factory = (service: string, region: string, options: any, credentialOptions: CredentialOptions) => Promise<unknown>;

const FACTORIES: Record<ToolService, Factory> = {
  async aws_s3(service, region, options, c) {
    const { S3Client } = await load("@aws-sdk/client-s3", service, () => import("@aws-sdk/client-s3"));
    return new S3Client({ ...options, region, credentials: awsCredentials(service, c) });
  },
  async aws_ec2(service, region, options, c) {
    const { EC2Client } = await load("@aws-sdk/client-ec2", service, () => import("@aws-sdk/client-ec2"));
    return new EC2Client({ ...options, region, credentials: awsCredentials(service, c) });
  },
  async aws_dynamodb(service, region, { translateConfig, ...options }, c) {
    const { DynamoDBClient } = await load("@aws-sdk/client-dynamodb", service, () => import("@aws-sdk/client-dynamodb"));
    const { DynamoDBDocumentClient } = await load("@aws-sdk/lib-dynamodb", service, () => import("@aws-sdk/lib-dynamodb"));
    return DynamoDBDocumentClient.from(new DynamoDBClient({ ...options, region, credentials: awsCredentials(service, c) }), translateConfig);
  },
  async aws_sqs(service, region, options, c) {
    const { SQSClient } = await load("@aws-sdk/client-sqs", service, () => import("@aws-sdk/client-sqs"));
    return new SQSClient({ ...options, region, credentials: awsCredentials(service, c) });
  },
  async aws_lambda(service, region, options, c) {
    const { LambdaClient } = await load("@aws-sdk/client-lambda", service, () => import("@aws-sdk/client-lambda"));
    return new LambdaClient({ ...options, region, credentials: awsCredentials(service, c) });
  },
  async aws_bedrock(service, region, options, c) {
    const { BedrockRuntimeClient } = await load("@aws-sdk/client-bedrock-runtime", service, () => import("@aws-sdk/client-bedrock-runtime"));
    return new BedrockRuntimeClient({ ...options, region, credentials: awsCredentials(service, c) });
  },
  async gcp_bigquery(service, region, options, c) {
    const { BigQuery } = await load("@google-cloud/bigquery", service, () => import("@google-cloud/bigquery"));
    return new BigQuery({ location: region === "global" ? undefined : region, ...options, ...gcpProject(options), authClient: await googleAuthClient(service, c) as never });
  },
  async gcp_storage(service, _region, options, c) {
    const { Storage } = await load("@google-cloud/storage", service, () => import("@google-cloud/storage"));
    return new Storage({ ...options, ...gcpProject(options), authClient: (await googleAuthClient(service, c)) as never });
  },
  async gcp_vertexai(service, region, options, c) {
    const { VertexAI } = await load("@google-cloud/vertexai", service, () => import("@google-cloud/vertexai"));
    const project = options.project ?? gcpProject({}).projectId;
    return new VertexAI({ ...options, project, location: region, googleAuthOptions: { authClient: (await googleAuthClient(service, c)) as never } });
  },
  async gcp_pubsub(service, _region, options, c) {
    const { PubSub } = await load("@google-cloud/pubsub", service, () => import("@google-cloud/pubsub"));
    return new PubSub({ ...options, ...gcpProject(options), authClient: (await googleAuthClient(service, c)) as never });
  },
  async azure_storage(service, _region, options, c) {
    const { BlobServiceClient } = await load("@azure/storage-blob", service, () => import("@azure/storage-blob"));
    const url = required(options.accountUrl ?? process.env.AZURE_STORAGE_ACCOUNT_URL, "an accountUrl (or AZURE_STORAGE_ACCOUNT_URL)", service);
    return new BlobServiceClient(url, azureCredential(service, c), options.pipelineOptions);
  },
  async azure_cosmosdb(service, _region, options, c) {
    const { CosmosClient } = await load("@azure/cosmos", service, () => import("@azure/cosmos"));
    const endpoint = required(options.endpoint ?? process.env.AZURE_COSMOS_ENDPOINT, "an endpoint (or AZURE_COSMOS_ENDPOINT)", service);
    return new CosmosClient({ ...options, endpoint, aadCredentials: azureCredential(service, c) });
  },
  async azure_openai(service, _region, options, c) {
    const { AzureOpenAI } = await load("openai", service, () => import("openai"));
    return new AzureOpenAI({ ...options, azureADTokenProvider: azureADTokenProvider(service, c) });
  },
};

/**
 * An authenticated client for `service`. Rejects before any network call with CredentialError
 * (403) when the running hexrAgent's resources do not list the service, then exchanges once (so a
 * denial, 403, or a missing identity, AuthenticationError, surfaces here, as with the Python
 * SDK), and returns a client that re-exchanges by itself whenever its credential needs renewing.
 */
export async function hexrTool<S extends ToolService>(service: S, options?: ToolOptions<S>): Promise<ServiceClients[S]>;
export async function hexrTool(service: string, options: { region?: string; client?: HexrClient; [option: string]: unknown } = {}): Promise<unknown> {
  const { region, client, ...clientOptions } = options;
  if (!isToolService(service)) {
    throw new HexrError(
      `${String(service).slice(0, 64)} is not in the catalog: hexrTool serves the 13 catalogued services; for another service the sidecar serves, pass awsCredentials(), googleAuthClient() or azureCredential() to its client`,
      { type: "BadRequest", status: 400 },
    );
  }
  const chosen = checkRequest(service, region);
  checkResources(service, chosen);
  const credentialOptions: CredentialOptions = { region: chosen, client };
  await (client ?? hexrClient()).resolve(service, chosen);
  return FACTORIES[service](service, chosen, clientOptions, credentialOptions);
}
