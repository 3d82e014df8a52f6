"""The content crew: one agent, three role processes (researcher, writer, editor), each with its
own SPIFFE identity (spiffe://{td}/agent/acme-corp/content-crew/{role}) and so its own grants.

Every role runs the same code, declaring the same resources for the crew as a whole; what each
process may actually get is decided by its identity, in the sidecar's allow-list and in OPA
(policy/data.json: researcher gcp_bigquery:read, writer aws_s3, editor nothing).

    hexr build crew.py --tenant acme-corp            # .hexr/process-contexts/{researcher,writer,editor}.json
    hexr run --role researcher -- python crew.py     # as root: each role under its own uid, its own SVID
    hexr run --role writer     -- python crew.py
    hexr run --role editor     -- python crew.py

or, with JWT-SVID files from elsewhere:

    HEXR_JWT_SVID_FILE=/run/hexr/researcher.jwt HEXR_PROCESS_ROLE=researcher python crew.py

Environment: HEXR_SIDECAR_URL (default http://127.0.0.1:15080), HEXR_JWT_SVID_FILE or
SPIFFE_ENDPOINT_SOCKET, HEXR_PROCESS_ROLE, CREW_S3_ENDPOINT (an S3 endpoint such as moto's, for
local runs), CREW_BUCKET (default hexr-content-crew), GOOGLE_CLOUD_PROJECT (BigQuery's project).

Prints one JSON line (never a credential): the role, the SPIFFE ID each granted service's
credential was issued to, and for each denied one the error's type and status.
"""

from __future__ import annotations

import json
import os
import sys
import time

from hexr import AuthenticationError, CredentialError, current_agent, get_credentials, hexr_agent, hexr_tool
from hexr.context import marker_path

ROLE = os.environ.get("HEXR_PROCESS_ROLE", "main")
SERVICES = ("aws_s3", "gcp_bigquery")
# The roles this one source runs as: `hexr build` reads them (the role itself comes from the
# environment at run time) and writes one process context per role.
HEXR_ROLES = ("researcher", "writer", "editor")


def try_service(service: str) -> dict:
    """Asks for `service`'s credential; what came back, without the credential."""
    try:
        credential = get_credentials(service)
    except CredentialError as error:
        return {"granted": False, "type": error.type, "status": error.status, "message": error.message}
    return {"granted": True, "spiffe_id": credential.spiffe_id, "region": credential.region}


@hexr_agent(name="content-crew", tenant="acme-corp", framework=None, resources=list(SERVICES), role=ROLE)
def run() -> dict:
    results = {service: try_service(service) for service in SERVICES}
    report = {"role": current_agent().process_role, "results": results, "marker": marker_path("content-crew", ROLE)}

    if ROLE == "writer" and results["aws_s3"]["granted"]:
        # The writer's job: put the draft where the editor would pick it up.
        endpoint = os.environ.get("CREW_S3_ENDPOINT")
        s3 = hexr_tool("aws_s3", **({"endpoint_url": endpoint} if endpoint else {}))
        bucket = os.environ.get("CREW_BUCKET", "hexr-content-crew")
        if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket=bucket)
        key = "drafts/%d-%d.md" % (os.getpid(), int(time.time() * 1000))
        s3.put_object(Bucket=bucket, Key=key, Body=b"# Draft\n\nWritten by the writer role.\n")
        report["wrote"] = {"bucket": bucket, "key": key, "listed": key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]}

    if ROLE == "researcher" and results["gcp_bigquery"]["granted"]:
        # The researcher's tool: a BigQuery client with its credentials (no query is run here).
        bq = hexr_tool("gcp_bigquery")
        report["bigquery_project"] = bq.project
    return report


def main() -> int:
    try:
        report = run()
    except AuthenticationError as error:
        print(json.dumps({"role": ROLE, "error": {"type": error.type, "status": error.status, "message": error.message}}))
        return 3
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
