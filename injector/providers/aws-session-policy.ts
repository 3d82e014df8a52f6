// The session policy passed with every AssumeRoleWithWebIdentity. A session policy can only narrow
// what the role allows, so the credentials reach the one service OPA granted, whatever else the
// role may do: a full grant of aws_s3 allows `s3:*` only, "aws_s3:read" only s3's read actions.
import { serviceSuffix } from "../catalog.ts";
import { IAM_ACTION_PREFIX } from "../config.ts";

/**
 * Services whose IAM action prefix is not the name after "aws_". Every other AWS service uses its
 * own name, underscores written as hyphens (aws_s3 → s3, aws_dynamodb → dynamodb, aws_sqs → sqs,
 * aws_lambda → lambda, aws_bedrock → bedrock, aws_ec2 → ec2, aws_kinesis → kinesis,
 * aws_sso_oidc → sso-oidc); `aws.action_prefixes` in the config adds to or overrides this table.
 * A wrong prefix fails closed: the session policy then allows nothing the role can do.
 */
export const AWS_ACTION_PREFIXES: Readonly<Record<string, string>> = {
  "aws_bedrock-runtime": "bedrock",
  "aws_bedrock-agent": "bedrock",
  "aws_bedrock-agent-runtime": "bedrock",
  "aws_sagemaker-runtime": "sagemaker",
  aws_opensearch: "es",
  aws_elasticsearch: "es",
  aws_eventbridge: "events",
  aws_stepfunctions: "states",
  "aws_step-functions": "states",
  "aws_cloudwatch-logs": "logs",
  aws_elbv2: "elasticloadbalancing",
  aws_elb: "elasticloadbalancing",
  "aws_secrets-manager": "secretsmanager",
  "aws_kinesis-firehose": "firehose",
  "aws_iot-data": "iot",
};

/** Read actions beyond the Get/List/Describe families some services need. */
const EXTRA_READ_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  dynamodb: ["BatchGetItem", "Query", "Scan"],
};

/** aws_{name} → the IAM action prefix: the config's table, then the built-in one, then the name. */
export function iamActionPrefix(service: string, overrides: Readonly<Record<string, string>> = {}): string {
  const prefix = overrides[service] ?? AWS_ACTION_PREFIXES[service] ?? serviceSuffix(service).replaceAll("_", "-");
  // The config checks its values, and the contract's service grammar leaves nothing IAM would refuse.
  if (!IAM_ACTION_PREFIX.test(prefix)) throw new Error(`${service} has no valid IAM action prefix`);
  return prefix;
}

/** Allows every action of the service's prefix, and nothing else. */
export function serviceSessionPolicy(prefix: string): string {
  return policy("HexrServiceOnly", [`${prefix}:*`]);
}

/** Allows only the service's read actions. */
export function readOnlySessionPolicy(prefix: string): string {
  return policy("HexrReadOnly", ["Get*", "List*", "Describe*", ...(EXTRA_READ_ACTIONS[prefix] ?? [])].map((action) => `${prefix}:${action}`));
}

function policy(sid: string, actions: string[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: [{ Sid: sid, Effect: "Allow", Action: actions, Resource: "*" }] });
}
