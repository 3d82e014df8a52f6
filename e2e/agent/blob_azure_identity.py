"""A stock azure-identity agent: no Hexr code, no secret in its code or configuration.
ManagedIdentityCredential finds the App Service managed-identity protocol through the standard
variables alone, and so gets its tokens from the sidecar's Azure door:

    IDENTITY_ENDPOINT     the door (plain http, loopback)
    IDENTITY_HEADER       the endpoint's secret, sent as X-IDENTITY-HEADER

The token goes to Blob Storage through azure-storage-blob's BlobServiceClient (bearer tokens need
HTTPS: the CA of the endpoint comes from REQUESTS_CA_BUNDLE, as for any private CA).

Inputs (environment): the two above; HEXR_TEST_BLOB_ACCOUNT_URL, the account URL (Azurite's
https://127.0.0.1:PORT/devstoreaccount1 in tests); AGENT_CONTAINER (created if absent, default
hexr-stock-blob-python).

Prints one JSON object on stdout, never a token: which managed-identity source azure-identity
chose (AppServiceCredential for IDENTITY_ENDPOINT + IDENTITY_HEADER), a SHA-256 fingerprint of the
access token (16 hex digits), and what it wrote and listed. Exit status 0 on success; on an error
prints {"error": {...}} and exits 1.
"""

import hashlib
import json
import os
import sys
import time

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.identity import ManagedIdentityCredential
from azure.storage.blob import BlobServiceClient

STORAGE_SCOPE = "https://storage.azure.com/.default"


def main():
    container_name = os.environ.get("AGENT_CONTAINER", "hexr-stock-blob-python")
    credential = ManagedIdentityCredential()
    try:
        service = BlobServiceClient(account_url=os.environ["HEXR_TEST_BLOB_ACCOUNT_URL"], credential=credential)
        container = service.get_container_client(container_name)
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        key = "reports/blob-python-%d-%d.json" % (os.getpid(), int(time.time() * 1000))
        container.upload_blob(key, b'{"written_by": "azure-storage-blob"}')
        listed = list(container.list_blob_names())
        # The token the client used (served from azure-identity's cache: no second fetch).
        token = credential.get_token(STORAGE_SCOPE).token
    except AzureError as error:
        print(json.dumps({"error": {"type": type(error).__name__, "message": str(error).splitlines()[0]}}))
        return 1

    source = getattr(credential, "_credential", None)
    print(json.dumps({
        "sdk": "azure-identity",
        "managed_identity_source": type(source).__name__ if source is not None else None,
        "token_sha256": hashlib.sha256(token.encode("utf-8")).hexdigest()[:16],
        "container": container_name,
        "written": key,
        "listed": listed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
