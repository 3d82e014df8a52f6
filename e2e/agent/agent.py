"""An unchanged agent: asks its pod's sidecar for AWS credentials the way the Hexr SDK does, then
uses plain boto3 with them.

    POST {HEXR_SIDECAR_URL}/exchange   {"service": "aws_s3", "region": ...}
    Authorization: Bearer <JWT-SVID>   (read from HEXR_JWT_SVID_FILE, as from the Workload API)

Inputs (environment):
    HEXR_SIDECAR_URL      default http://127.0.0.1:15080
    HEXR_JWT_SVID_FILE    file holding the agent's JWT-SVID (required)
    HEXR_REGION           optional region override
    AGENT_BUCKET          bucket to use (created if absent), default hexr-agent-demo
    AWS_ENDPOINT_URL_S3   standard boto3 setting; points S3 at moto in tests

Prints one JSON object on stdout (never a credential), exit status 0 on success; on an
exchange error prints {"error": {...}} and exits 3 (AuthenticationError) or 4 (CredentialError).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import boto3


class AuthenticationError(Exception):
    """No SPIFFE identity the sidecar could verify."""


class CredentialError(Exception):
    """The exchange failed: denied by policy, or the injector or cloud was unavailable."""


def exchange(service, region=None):
    """POST /exchange to the sidecar; returns (answer, cache tier)."""
    sidecar = os.environ.get("HEXR_SIDECAR_URL", "http://127.0.0.1:15080")
    with open(os.environ["HEXR_JWT_SVID_FILE"], encoding="utf-8") as handle:
        token = handle.read().strip()
    body = {"service": service}
    if region:
        body["region"] = region
    request = urllib.request.Request(
        sidecar.rstrip("/") + "/exchange",
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response), response.headers.get("x-hexr-cache")
    except urllib.error.HTTPError as error:
        detail = json.load(error).get("error", {})
        kind = AuthenticationError if detail.get("type") == "AuthenticationError" else CredentialError
        raise kind("%s %s: %s" % (error.code, detail.get("type"), detail.get("message"))) from None


def hexr_tool(service, region=None):
    """What hexr_tool("aws_s3") returns: a boto3 client built from the exchanged credentials."""
    if service != "aws_s3":
        raise ValueError("this example agent only builds S3 clients")
    answer, tier = exchange(service, region)
    credentials = answer["credentials"]
    client = boto3.client(
        "s3",
        region_name=answer["region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return client, answer, tier


def main():
    region = os.environ.get("HEXR_REGION") or None
    bucket = os.environ.get("AGENT_BUCKET", "hexr-agent-demo")
    tiers = []
    try:
        s3, answer, tier = hexr_tool("aws_s3", region)
        tiers.append(tier)
        existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        if bucket not in existing:
            if answer["region"] == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": answer["region"]})
        key = "reports/%d.json" % int(time.time() * 1000)
        payload = json.dumps({"written_by": answer["spiffe_id"]})
        s3.put_object(Bucket=bucket, Key=key, Body=payload.encode("utf-8"), ContentType="application/json")

        # A second tool call in the same process, as agents do: served from the sidecar's cache.
        s3_again, _, tier = hexr_tool("aws_s3", region)
        tiers.append(tier)
        listed = [o["Key"] for o in s3_again.list_objects_v2(Bucket=bucket).get("Contents", [])]
        read_back = s3_again.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except (AuthenticationError, CredentialError) as error:
        print(json.dumps({"error": {"type": type(error).__name__, "message": str(error)}}))
        return 3 if isinstance(error, AuthenticationError) else 4

    print(json.dumps({
        "spiffe_id": answer["spiffe_id"],
        "region": answer["region"],
        "cache_tiers": tiers,
        "bucket": bucket,
        "buckets": sorted(set(existing) | {bucket}),
        "written": key,
        "listed": listed,
        "read_back": read_back,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
