"""Azure against the real stack: Entra tokens from the injector through the sidecar (the Entra ID
stand-in behind it), used by the real Azure clients: Blob Storage against Azurite (OAuth on,
HTTPS); Cosmos DB and Azure OpenAI against a loopback server that records what they send."""

import os
import uuid

import pytest

import hexr
import hexr.clock
import hexr.sidecar
from hexr import hexr_tool
from hexr.providers.azure import HexrTokenCredential

from recorder import RecordingServer
from stack_helpers import IDS, fp, sidecar_calls, use_identity

pytestmark = pytest.mark.stack


def _token(service, region=None):
    return hexr.get_credentials(service, region).secret["access_token"]


def test_blob_storage_on_azurite(monkeypatch):
    use_identity(monkeypatch, "analyst")
    blob = hexr_tool("azure_storage", account_url=os.environ["HEXR_TEST_BLOB_ACCOUNT_URL"])
    name = "hexr-sdk-python-%s" % uuid.uuid4().hex[:8]
    container = blob.create_container(name)
    container.upload_blob("reports/a.json", b'{"ok": true}')
    assert list(container.list_blob_names()) == ["reports/a.json"]
    assert container.download_blob("reports/a.json").readall() == b'{"ok": true}'
    credential = blob.credential
    assert isinstance(credential, HexrTokenCredential)
    assert fp(credential.get_token("https://storage.azure.com/.default").token) == fp(_token("azure_storage"))
    # Past the point where the held token has under 6 minutes left: asked again, it re-exchanges.
    calls = sidecar_calls()
    hexr.clock.advance(hexr.sidecar.l1_cache().get((IDS["analyst"], "azure_storage", "eastus")).seconds_left() - 300)
    credential.get_token("https://storage.azure.com/.default")
    assert credential.refresh_count == 1 and sidecar_calls() == calls + 1
    assert list(container.list_blob_names()) == ["reports/a.json"]


def _cosmos_route(method, path):
    # GetDatabaseAccount, which CosmosClient calls when it is constructed
    return 200, {
        "_self": "", "id": "hexr-dev", "_rid": "hexr-dev.documents.azure.com",
        "writableLocations": [], "readableLocations": [], "enableMultipleWriteLocations": False,
        "userReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
        "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
        "systemReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
        "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
        "queryEngineConfiguration": "{}",
    }


# azure-cosmos turns certificate verification off by itself for a loopback endpoint (its emulator
# detection), whatever REQUESTS_CA_BUNDLE says: the warning is the library's, not a choice here.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_cosmos_client_sends_the_sidecars_token(monkeypatch):
    use_identity(monkeypatch, "probe")
    api = RecordingServer(_cosmos_route, tls=(os.environ["HEXR_TEST_TLS_CERT"], os.environ["HEXR_TEST_TLS_KEY"]))
    try:
        cosmos = hexr_tool("azure_cosmosdb", url=api.url + "/")
        from azure.cosmos import CosmosClient

        assert isinstance(cosmos, CosmosClient)
        token = _token("azure_cosmosdb")
        assert api.authorizations(), "CosmosClient made no request"
        # Cosmos DB's AAD header: type=aad&ver=1.0&sig=<token>, URL-encoded
        from urllib.parse import unquote

        assert {fp(unquote(a)) for a in api.authorizations()} == {fp("type=aad&ver=1.0&sig=" + token)}
    finally:
        api.close()


def test_azure_openai_sends_the_sidecars_token_and_refreshes_it(monkeypatch):
    use_identity(monkeypatch, "researcher")
    api = RecordingServer(lambda method, path: (200, {"object": "list", "data": []}))
    try:
        client = hexr_tool("azure_openai", azure_endpoint=api.url, api_version="2024-10-21")
        import openai

        assert isinstance(client, openai.AzureOpenAI)
        list(client.models.list())
        assert [fp(a) for a in api.authorizations()] == [fp("Bearer " + _token("azure_openai"))]
        calls = sidecar_calls()
        hexr.clock.advance(hexr.sidecar.l1_cache().get((IDS["researcher"], "azure_openai", "eastus")).seconds_left() - 300)
        list(client.models.list())
        assert client.hexr_credential.refresh_count == 1 and sidecar_calls() == calls + 1
        assert api.authorizations()[-1][:7] == "Bearer "
    finally:
        api.close()
