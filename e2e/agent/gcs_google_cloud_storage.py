"""A stock google-cloud-storage agent: no Hexr code, no key file. google.auth.default() finds no
GOOGLE_APPLICATION_CREDENTIALS and no gcloud configuration, pings the metadata server and so uses
Compute Engine credentials, from the sidecar's GCE metadata door found through the standard
variables alone:

    GCE_METADATA_HOST     host:port of the metadata server (the token and account requests)
    GCE_METADATA_IP       host:port of the detection ping

Inputs (environment):
    the two above; GOOGLE_CLOUD_PROJECT optional (else the metadata server's project-id)
    HEXR_TEST_GCS_ENDPOINT  the Cloud Storage API endpoint (fake-gcs-server in tests), passed as
                            client_options={"api_endpoint": ...} as a user would for a private
                            endpoint. Not STORAGE_EMULATOR_HOST: with it the library switches to
                            anonymous credentials and would never ask the metadata server.
    AGENT_BUCKET            bucket to use (created if absent), default hexr-stock-gcs-python

Prints one JSON object on stdout, never a token: the credentials class google.auth.default()
returned (google.auth.compute_engine.credentials.Credentials for the metadata door), a SHA-256
fingerprint of the access token used (16 hex digits), and what it wrote and listed. Exit status 0
on success; on an error prints {"error": {...}} and exits 1.
"""

import hashlib
import json
import os
import sys
import time

import google.auth
import google.auth.exceptions
import google.api_core.exceptions
from google.cloud import storage

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]


def main():
    bucket_name = os.environ.get("AGENT_BUCKET", "hexr-stock-gcs-python")
    try:
        credentials, project = google.auth.default(scopes=SCOPES)
        client = storage.Client(
            project=project,
            credentials=credentials,
            client_options={"api_endpoint": os.environ["HEXR_TEST_GCS_ENDPOINT"]},
        )
        buckets = [b.name for b in client.list_buckets()]
        bucket = client.bucket(bucket_name)
        if bucket_name not in buckets:
            bucket = client.create_bucket(bucket_name)
        key = "reports/gcs-python-%d-%d.json" % (os.getpid(), int(time.time() * 1000))
        bucket.blob(key).upload_from_string('{"written_by": "google-cloud-storage"}', content_type="application/json")
        listed = [blob.name for blob in client.list_blobs(bucket_name)]
    except (google.auth.exceptions.GoogleAuthError, google.api_core.exceptions.GoogleAPIError) as error:
        print(json.dumps({"error": {"type": type(error).__name__, "message": str(error)}}))
        return 1

    print(json.dumps({
        "sdk": "google-cloud-storage",
        "credentials_class": "%s.%s" % (type(credentials).__module__, type(credentials).__name__),
        "service_account": getattr(credentials, "service_account_email", None),
        "project": project,
        "token_sha256": hashlib.sha256(credentials.token.encode("utf-8")).hexdigest()[:16],
        "bucket": bucket_name,
        "written": key,
        "listed": listed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
