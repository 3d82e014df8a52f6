"""Spans and metrics, read with OpenTelemetry's in-memory exporter and reader."""

import pytest

import hexr.clock
from hexr import CredentialError, get_credentials, hexr_agent, hexr_tool

from conftest import metric_value

WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"


def test_invoke_span_and_metrics(fake_sidecar, token_file, spans):
    token_file(WRITER)
    before = {
        "inv": metric_value("hexr.tool.invocations", service="aws_sqs"),
        "miss": metric_value("hexr.cache.misses", service="aws_sqs"),
        "hit": metric_value("hexr.cache.hits", service="aws_sqs", cache_tier="L1", source="process"),
        "dur": metric_value("hexr.tool.duration", service="aws_sqs"),
    }
    hexr_tool("aws_sqs", region="eu-west-1")
    hexr_tool("aws_sqs", region="eu-west-1")
    invoke = [s for s in spans.get_finished_spans() if s.name == "hexr.tool.invoke"]
    assert len(invoke) == 2
    first, second = (dict(s.attributes) for s in invoke)
    assert (first["service"], first["region"], first["cache_tier"], first["hexr.cache.source"]) == ("aws_sqs", "eu-west-1", "L3", "sidecar")
    assert (second["cache_tier"], second["hexr.cache.source"]) == ("L1", "process")
    assert first["hexr.spiffe_id"] == WRITER
    assert first["duration_ms"] > 0 and second["duration_ms"] < first["duration_ms"]
    assert metric_value("hexr.tool.invocations", service="aws_sqs") - before["inv"] == 2
    assert metric_value("hexr.cache.misses", service="aws_sqs") - before["miss"] == 1
    assert metric_value("hexr.cache.hits", service="aws_sqs", cache_tier="L1", source="process") - before["hit"] == 1
    assert metric_value("hexr.tool.duration", service="aws_sqs") - before["dur"] == 2
    for span in invoke:
        for value in span.attributes.values():
            assert "fake-" not in str(value) and "ASIA" not in str(value)


def test_sidecar_tier_is_reported(fake_sidecar, token_file, spans):
    token_file(WRITER)
    fake_sidecar.tier = "L2"
    get_credentials("aws_lambda")
    (span,) = [s for s in spans.get_finished_spans() if s.name == "hexr.tool.invoke"]
    assert span.attributes["cache_tier"] == "L2" and span.attributes["hexr.cache.source"] == "sidecar"


def test_error_span(fake_sidecar, token_file, spans):
    token_file(WRITER)

    @hexr_agent(name="crew", tenant="acme-corp", role="editor", resources=[])
    def editor():
        hexr_tool("aws_s3")

    with pytest.raises(CredentialError):
        editor()
    (span,) = [s for s in spans.get_finished_spans() if s.name == "hexr.tool.invoke"]
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "CredentialError" and span.attributes["hexr.error.status"] == 403
    assert span.attributes["hexr.process_role"] == "editor"


def test_refresh_is_a_refresh_span_not_an_invocation(fake_sidecar, token_file, spans):
    token_file(WRITER)
    client = hexr_tool("aws_sqs", region="us-west-2", endpoint_url=fake_sidecar.url)
    invocations = metric_value("hexr.tool.invocations", service="aws_sqs")
    hexr.clock.advance(3600 - 300)  # botocore: 5 minutes left, a mandatory refresh
    credentials = client._request_signer._credentials
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIAFAKE")
    assert fake_sidecar.calls("aws_sqs") == 2
    assert metric_value("hexr.tool.invocations", service="aws_sqs") == invocations
    refresh = [s for s in spans.get_finished_spans() if s.name == "hexr.credential.refresh"]
    assert len(refresh) == 1 and refresh[0].attributes["cache_tier"] == "L3"
