// A stock AWS SDK for JavaScript v3 agent: no Hexr code, no credential in its code or
// configuration. The client's default credential chain finds the sidecar's AWS
// container-credentials door through the standard variables alone (fromHttp in
// @aws-sdk/credential-provider-http, part of the Node default chain):
//
//   AWS_CONTAINER_CREDENTIALS_FULL_URI        the door (plain http, loopback)
//   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE    the process's JWT-SVID, sent as the Authorization header
//
// Inputs (environment): the two above, AWS_REGION (the SDK's own setting), AWS_ENDPOINT_URL_S3
// (the SDK's standard service endpoint setting; moto in tests), AGENT_BUCKET (created if absent,
// default hexr-stock-aws-sdk-js), AGENT_S3_CALLS (optional: that many more calls with the client).
//
// Run with plain `node` (no build step). Prints one JSON object on stdout, never a credential:
// which provider the SDK says supplied the credentials (`credential_sources`: CREDENTIALS_HTTP for
// the container door), the access key's first 4 characters and a SHA-256 fingerprint of it (16 hex
// digits), and what it wrote and listed. Exit status 0 on success; on an error prints
// {"error": {...}} and exits 1.
import { createHash } from "node:crypto";
import {
  CreateBucketCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";

const fingerprint = (value) => createHash("sha256").update(value).digest("hex").slice(0, 16);

async function main() {
  const bucket = process.env.AGENT_BUCKET ?? "hexr-stock-aws-sdk-js";
  const calls = Number(process.env.AGENT_S3_CALLS ?? "0");
  // Everything from the environment (an IP endpoint such as moto's gets path-style addressing).
  const s3 = new S3Client({});
  const region = await s3.config.region();
  try {
    const existing = ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name);
    if (!existing.includes(bucket)) {
      await s3.send(new CreateBucketCommand({
        Bucket: bucket,
        ...(region === "us-east-1" ? {} : { CreateBucketConfiguration: { LocationConstraint: region } }),
      }));
    }
    const key = `reports/aws-sdk-js-${process.pid}-${Date.now()}.json`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{"written_by": "aws-sdk-js"}', ContentType: "application/json" }));
    const listed = ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key);
    const started = performance.now();
    for (let i = 0; i < calls; i++) await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    const extraCallsMs = Math.round(performance.now() - started);

    // The client's memoized credentials: the ones it signed with.
    const credentials = await s3.config.credentials();
    console.log(JSON.stringify({
      sdk: "aws-sdk-js-v3",
      credential_sources: Object.keys(credentials.$source ?? {}),
      access_key_prefix: credentials.accessKeyId.slice(0, 4),
      access_key_sha256: fingerprint(credentials.accessKeyId),
      region,
      bucket,
      written: key,
      listed,
      extra_calls: calls,
      extra_calls_ms: extraCallsMs,
    }));
    return 0;
  } catch (error) {
    console.log(JSON.stringify({ error: { type: error?.name ?? "Error", message: String(error?.message ?? error) } }));
    return 1;
  } finally {
    s3.destroy();
  }
}

process.exitCode = await main();
