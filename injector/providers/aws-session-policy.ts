// The session policy passed with AssumeRoleWithWebIdentity when OPA granted only "service:read".
// A session policy can only narrow what the role allows, so the credentials end up read-only for
// that one service whatever the role's own policies say.
import { serviceSuffix } from "../catalog.ts";

/** Read actions beyond the Get/List/Describe families some services need. */
const EXTRA_READ_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  dynamodb: ["BatchGetItem", "Query", "Scan"],
};

/** The IAM action prefix is the name after "aws_" (s3, ec2, dynamodb, sqs, lambda, bedrock, ...). */
export function readOnlySessionPolicy(service: string): string {
  const prefix = serviceSuffix(service);
  const actions = ["Get*", "List*", "Describe*", ...(EXTRA_READ_ACTIONS[prefix] ?? [])].map((action) => `${prefix}:${action}`);
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Sid: "HexrReadOnly", Effect: "Allow", Action: actions, Resource: "*" }],
  });
}
