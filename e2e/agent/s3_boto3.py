"""A stock boto3 agent: no Hexr code, no credential in its code or configuration. boto3's default
credential chain finds the sidecar's AWS container-credentials door through the standard variables
alone, exactly as on ECS or EKS Pod Identity:

    AWS_CONTAINER_CREDENTIALS_FULL_URI        the door (plain http, loopback)
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE    the process's JWT-SVID, sent as the Authorization header

Inputs (environment):
    the two above, and AWS_REGION (else us-east-1)
    AWS_ENDPOINT_URL_S3   standard boto3 setting; points S3 at moto in tests
    AGENT_BUCKET          bucket to use (created if absent), default hexr-stock-boto3
    AGENT_S3_CALLS        optional: after the write, make this many more S3 calls with the same
                          client (a busy agent: botocore should fetch the credential once)

Prints one JSON object on stdout, never a credential or token: where botocore found the
credentials (`credential_method`, "container-role" for the container door), the access key's
first 4 characters and a SHA-256 fingerprint of it (16 hex digits, to tell identities apart), and
what it wrote and listed. Exit status 0 on success; on an error prints {"error": {...}} and exits 1.
"""

import hashlib
import json
import os
import sys
import time

import boto3
import botocore.exceptions


def fingerprint(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def main():
    bucket = os.environ.get("AGENT_BUCKET", "hexr-stock-boto3")
    calls = int(os.environ.get("AGENT_S3_CALLS", "0"))
    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    s3 = session.client("s3", region_name=region)
    try:
        existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        if bucket not in existing:
            if region == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        key = "reports/boto3-%d-%d.json" % (os.getpid(), int(time.time() * 1000))
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"written_by": "boto3"}', ContentType="application/json")
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        started = time.monotonic()
        for _ in range(calls):
            s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
        elapsed_ms = int((time.monotonic() - started) * 1000)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(json.dumps({"error": {"type": type(error).__name__, "message": str(error)}}))
        return 1

    # The session's credential object is the one the client signed with (botocore caches it).
    credentials = session.get_credentials()
    access_key = credentials.get_frozen_credentials().access_key
    print(json.dumps({
        "sdk": "boto3",
        "credential_method": credentials.method,
        "access_key_prefix": access_key[:4],
        "access_key_sha256": fingerprint(access_key),
        "region": region,
        "bucket": bucket,
        "written": key,
        "listed": listed,
        "extra_calls": calls,
        "extra_calls_ms": elapsed_ms,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
