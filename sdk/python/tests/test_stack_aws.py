"""AWS against the real stack: the sidecar (Envoy + the filter), the injector, OPA and moto (STS,
S3, DynamoDB). Every credential here was minted by moto's STS through the injector."""

import uuid

import pytest

import hexr
import hexr.clock
import hexr.sidecar
from hexr import AuthenticationError, CredentialError, hexr_agent, hexr_tool

from stack_helpers import IDS, fp, sidecar_calls, use_identity

pytestmark = pytest.mark.stack


@pytest.fixture
def moto(monkeypatch):
    import os

    return os.environ["HEXR_TEST_MOTO_URL"]


def _frozen(client):
    return client._request_signer._credentials.get_frozen_credentials()


def test_s3_lists_and_writes_objects_in_moto(monkeypatch, moto, spans):
    spiffe_id = use_identity(monkeypatch, "researcher")

    @hexr_agent(name="research-analyst", tenant="acme-corp", resources=["aws_s3", "aws_dynamodb"])
    def work():
        s3 = hexr_tool("aws_s3", endpoint_url=moto)
        bucket = "hexr-sdk-python-%s" % uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="reports/a.json", Body=b'{"ok": true}')
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        body = s3.get_object(Bucket=bucket, Key="reports/a.json")["Body"].read()
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        return s3, bucket, listed, body, names

    s3, bucket, listed, body, names = work()
    assert listed == ["reports/a.json"] and body == b'{"ok": true}' and bucket in names
    # The client signs with the credential the sidecar holds for this identity (an STS session key).
    credential = hexr.get_credentials("aws_s3")
    assert fp(_frozen(s3).access_key) == fp(credential.secret["AccessKeyId"])
    assert credential.secret["AccessKeyId"][:4] == "ASIA"
    assert credential.spiffe_id == spiffe_id
    assert s3._request_signer._credentials.method == "hexr"
    (first, second) = [s for s in spans.get_finished_spans() if s.name == "hexr.tool.invoke"]
    assert first.attributes["hexr.cache.source"] == "sidecar" and first.attributes["cache_tier"] in ("L1", "L2", "L3")
    assert (second.attributes["cache_tier"], second.attributes["hexr.cache.source"]) == ("L1", "process")


def test_dynamodb_resource_creates_puts_and_gets(monkeypatch, moto):
    use_identity(monkeypatch, "researcher")
    dynamodb = hexr_tool("aws_dynamodb", endpoint_url=moto)
    assert type(dynamodb).__name__ == "dynamodb.ServiceResource"
    name = "hexr-sdk-%s" % uuid.uuid4().hex[:8]
    table = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.wait_until_exists()
    table.put_item(Item={"id": "run-1", "agent": "research-analyst", "tokens": 1200})
    item = table.get_item(Key={"id": "run-1"})["Item"]
    assert item == {"id": "run-1", "agent": "research-analyst", "tokens": 1200}
    assert dynamodb.meta.client._request_signer._credentials.method == "hexr"


def test_client_keeps_working_across_a_forced_expiry(monkeypatch, moto, spans):
    use_identity(monkeypatch, "researcher")
    s3 = hexr_tool("aws_s3", endpoint_url=moto)
    s3.list_buckets()
    first_key = fp(_frozen(s3).access_key)
    calls = sidecar_calls()
    # Later by the SDK's clock (which botocore reads too), until the credential the client holds
    # has 5 minutes left: inside botocore's mandatory refresh window (10 minutes), and past the
    # in-process L1's buffer, so the refresh goes to the sidecar.
    left = hexr.sidecar.l1_cache().get((IDS["researcher"], "aws_s3", "us-east-1")).seconds_left()
    hexr.clock.advance(left - 300)
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sidecar_calls() == calls + 1
    refresh = [s for s in spans.get_finished_spans() if s.name == "hexr.credential.refresh"]
    assert len(refresh) == 1 and refresh[0].attributes["hexr.cache.source"] == "sidecar"
    assert refresh[0].attributes["service"] == "aws_s3"
    # The sidecar serves its own cache entry (real time has not moved): the same key, still valid.
    assert fp(_frozen(s3).access_key) == first_key
    # And the client goes on working on later calls.
    s3.list_buckets()
    hexr.clock.reset()
    s3.list_buckets()


def test_region_override_reaches_the_client(monkeypatch, moto, spans):
    use_identity(monkeypatch, "researcher")
    s3 = hexr_tool("aws_s3", region="eu-west-1", endpoint_url=moto)
    assert s3.meta.region_name == "eu-west-1"
    bucket = "hexr-sdk-eu-%s" % uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    credential = hexr.get_credentials("aws_s3", region="eu-west-1")
    assert credential.region == "eu-west-1"  # the sidecar's answer is for that region
    assert hexr.get_credentials("aws_s3").region == "us-east-1"
    invoke = [s for s in spans.get_finished_spans() if s.name == "hexr.tool.invoke"]
    assert invoke[0].attributes["region"] == "eu-west-1"


def test_denied_before_the_sidecar_by_resources(monkeypatch):
    use_identity(monkeypatch, "researcher")
    calls = sidecar_calls()

    @hexr_agent(name="research-analyst", tenant="acme-corp", resources=["aws_s3"])
    def work():
        hexr_tool("aws_ec2")

    with pytest.raises(CredentialError) as denied:
        work()
    assert (denied.value.status, denied.value.message) == (403, "the service is not in this agent's resources")
    assert sidecar_calls() == calls


def test_denied_by_the_sidecar_and_by_opa(monkeypatch):
    use_identity(monkeypatch, "researcher")
    calls = sidecar_calls()
    with pytest.raises(CredentialError) as sidecar:  # the filter's allow-list (envoy/exchange-filter.json)
        hexr_tool("aws_ec2")
    assert (sidecar.value.status, sidecar.value.type, sidecar.value.message) == (403, "CredentialError", "the service is not in this agent's resources")
    use_identity(monkeypatch, "stranger")  # no allow-list entry: the injector asks OPA, which denies
    with pytest.raises(CredentialError) as opa:
        hexr_tool("aws_s3")
    assert opa.value.status == 403 and opa.value.type == "CredentialError"
    assert opa.value.message != "the service is not in this agent's resources"
    assert sidecar_calls() == calls + 2


def test_no_identity_and_a_forged_one(monkeypatch, tmp_path):
    monkeypatch.delenv("HEXR_JWT_SVID_FILE", raising=False)
    calls = sidecar_calls()
    with pytest.raises(AuthenticationError) as none:
        hexr_tool("aws_s3")
    assert none.value.status == 401 and sidecar_calls() == calls
    monkeypatch.setenv("HEXR_JWT_SVID_FILE", str(tmp_path / "missing.jwt"))
    with pytest.raises(AuthenticationError):
        hexr_tool("aws_s3")
    from conftest import unsigned_jwt

    forged = tmp_path / "forged.jwt"
    forged.write_text(unsigned_jwt(IDS["researcher"]))
    monkeypatch.setenv("HEXR_JWT_SVID_FILE", str(forged))
    with pytest.raises(AuthenticationError) as refused:  # the sidecar's jwt_authn does not verify it
        hexr_tool("aws_s3")
    assert refused.value.status == 401 and refused.value.type == "AuthenticationError"


def test_other_aws_services_by_name(monkeypatch, moto):
    use_identity(monkeypatch, "researcher")
    bedrock = hexr_tool("aws_bedrock", endpoint_url=moto)
    assert bedrock.meta.service_model.service_name == "bedrock-runtime"
    assert bedrock._request_signer._credentials.get_frozen_credentials().access_key[:4] == "ASIA"
