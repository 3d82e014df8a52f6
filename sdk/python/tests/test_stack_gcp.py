"""GCP against the real stack: tokens from the injector through the sidecar (the GCP STS and IAM
Credentials stand-ins behind it), used by the real Google clients: Cloud Storage against
fake-gcs-server; BigQuery and Vertex AI against a loopback server that records what they send;
Pub/Sub (gRPC) through its credentials object."""

import os
import uuid

import pytest

import hexr
import hexr.clock
import hexr.sidecar
from hexr import hexr_agent, hexr_tool
from hexr.providers.gcp import HexrGoogleCredentials

from recorder import RecordingServer
from stack_helpers import IDS, fp, sidecar_calls, use_identity

pytestmark = pytest.mark.stack
PROJECT = "hexr-dev"


def _token(service, region=None):
    return hexr.get_credentials(service, region).secret["access_token"]


def test_cloud_storage_on_fake_gcs(monkeypatch):
    use_identity(monkeypatch, "analyst")

    @hexr_agent(name="multi-cloud-analyst", tenant="acme-corp", resources=["aws_s3", "gcp_bigquery", "gcp_storage", "azure_storage"])
    def work():
        gcs = hexr_tool("gcp_storage", project=PROJECT, client_options={"api_endpoint": os.environ["HEXR_TEST_GCS_ENDPOINT"]})
        name = "hexr-sdk-python-%s" % uuid.uuid4().hex[:8]
        bucket = gcs.create_bucket(name)
        bucket.blob("reports/a.json").upload_from_string('{"ok": true}', content_type="application/json")
        listed = [b.name for b in gcs.list_blobs(name)]
        return gcs, listed, bucket.blob("reports/a.json").download_as_bytes()

    gcs, listed, body = work()
    assert listed == ["reports/a.json"] and body == b'{"ok": true}'
    assert isinstance(gcs._credentials, HexrGoogleCredentials)
    assert fp(gcs._credentials.token) == fp(_token("gcp_storage"))


def test_bigquery_sends_the_sidecars_token_and_refreshes_it(monkeypatch):
    use_identity(monkeypatch, "analyst")
    api = RecordingServer(lambda method, path: (200, {"kind": "bigquery#datasetList", "datasets": []}))
    try:
        bq = hexr_tool("gcp_bigquery", project=PROJECT, client_options={"api_endpoint": api.url})
        assert list(bq.list_datasets()) == []
        token = _token("gcp_bigquery")
        assert [fp(a) for a in api.authorizations()] == [fp("Bearer " + token)]
        assert api.requests[0]["path"].startswith("/bigquery/v2/projects/%s/datasets" % PROJECT)
        credentials = bq._credentials
        assert isinstance(credentials, HexrGoogleCredentials) and credentials.refresh_count == 0
        # Move the SDK's clock to 2 minutes before the token's expiry: google-auth sees it stale,
        # calls refresh(), which re-exchanges through the sidecar.
        calls = sidecar_calls()
        hexr.clock.advance(hexr.sidecar.l1_cache().get((IDS["analyst"], "gcp_bigquery", "us-central1")).seconds_left() - 120)
        assert list(bq.list_datasets()) == []
        assert credentials.refresh_count == 1 and sidecar_calls() == calls + 1
        assert api.authorizations()[-1][:7] == "Bearer "
    finally:
        api.close()


def test_bigquery_region_is_its_location(monkeypatch):
    use_identity(monkeypatch, "analyst")
    bq = hexr_tool("gcp_bigquery", region="europe-west1", project=PROJECT, client_options={"api_endpoint": "http://127.0.0.1:9"})
    assert bq.location == "europe-west1"
    assert hexr.get_credentials("gcp_bigquery", "europe-west1").region == "europe-west1"


def test_pubsub_publisher_with_working_credentials(monkeypatch):
    use_identity(monkeypatch, "probe")
    publisher = hexr_tool("gcp_pubsub")
    from google.cloud import pubsub_v1

    assert isinstance(publisher, pubsub_v1.PublisherClient)
    credentials = publisher._transport._credentials
    assert isinstance(credentials, HexrGoogleCredentials)
    assert fp(credentials.token) == fp(_token("gcp_pubsub"))
    calls = sidecar_calls()
    hexr.clock.advance(hexr.sidecar.l1_cache().get((IDS["probe"], "gcp_pubsub", "us-central1")).seconds_left() - 120)
    import google.auth.transport.requests

    headers = {}
    credentials.before_request(google.auth.transport.requests.Request(), "POST", "https://pubsub.googleapis.com/", headers)
    assert credentials.refresh_count == 1 and sidecar_calls() == calls + 1
    assert fp(headers["authorization"]) == fp("Bearer " + credentials.token)


def test_vertex_ai_client_sends_the_sidecars_token(monkeypatch):
    use_identity(monkeypatch, "researcher")
    api = RecordingServer(lambda method, path: (200, {"models": []}))
    try:
        from google import genai
        from google.genai import types

        vertex = hexr_tool("gcp_vertexai", project=PROJECT, http_options=types.HttpOptions(base_url=api.url + "/"))
        assert isinstance(vertex, genai.Client) and vertex.vertexai
        assert vertex._api_client.location == "us-central1" and vertex._api_client.project == PROJECT
        list(vertex.models.list())
        assert [fp(a) for a in api.authorizations()] == [fp("Bearer " + _token("gcp_vertexai"))]
    finally:
        api.close()
