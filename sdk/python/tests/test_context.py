"""@hexr_agent: context per thread and task, marker files, and the resources check."""

import asyncio
import json
import os
import threading

import pytest

import hexr
from hexr import CredentialError, HexrContext, current_agent, hexr_agent, hexr_tool
from hexr.context import make_context

WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"


def test_sync_agent_sets_context_and_writes_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("HEXR_CONTEXT_DIR", str(tmp_path / "ctx"))

    @hexr_agent(name="content-crew", tenant="acme-corp", framework="crewai", resources=["aws_s3", "gcp_bigquery"], role="researcher")
    def run():
        return current_agent()

    assert current_agent() is None
    context = run()
    assert current_agent() is None
    assert (context.agent_name, context.tenant, context.process_role, context.framework) == ("content-crew", "acme-corp", "researcher", "crewai")
    marker = tmp_path / "ctx" / "content-crew-researcher.json"
    assert json.loads(marker.read_text()) == {
        "agent_name": "content-crew", "process_role": "researcher", "tenant": "acme-corp", "framework": "crewai",
        "pid": os.getpid(), "resources": ["aws_s3", "gcp_bigquery"],
    }
    assert oct(marker.stat().st_mode & 0o777) == "0o644"


def test_default_directory_and_role(monkeypatch, tmp_path):
    monkeypatch.delenv("HEXR_CONTEXT_DIR")
    monkeypatch.setenv("HEXR_PROCESS_ROLE", "editor")
    from hexr.context import marker_path

    assert marker_path("content-crew", "editor") == "/tmp/hexr-context/content-crew-editor.json"
    monkeypatch.setenv("HEXR_CONTEXT_DIR", str(tmp_path))

    @hexr_agent(name="a", tenant="t")
    def run():
        return current_agent().process_role

    assert run() == "editor"
    monkeypatch.delenv("HEXR_PROCESS_ROLE")

    @hexr_agent(name="a", tenant="t")
    def main_role():
        return current_agent().process_role

    assert main_role() == "main"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-editor.json", "a-main.json"]


def test_async_agents_in_concurrent_tasks_keep_their_own_context():
    @hexr_agent(name="crew", tenant="acme-corp", role="researcher")
    async def researcher():
        await asyncio.sleep(0.01)
        inner = await asyncio.create_task(asyncio.sleep(0, result=current_agent().process_role))
        return current_agent().process_role, inner

    @hexr_agent(name="crew", tenant="acme-corp", role="writer")
    async def writer():
        await asyncio.sleep(0.005)
        return current_agent().process_role, current_agent().process_role

    async def main():
        return await asyncio.gather(researcher(), writer(), researcher())

    assert asyncio.run(main()) == [("researcher", "researcher"), ("writer", "writer"), ("researcher", "researcher")]
    assert asyncio.iscoroutinefunction(researcher)


def test_threads_see_their_own_context():
    seen = {}

    def run(role):
        @hexr_agent(name="crew", tenant="t", role=role)
        def body():
            threading.Event().wait(0.01)
            seen[role] = current_agent().process_role

        body()

    threads = [threading.Thread(target=run, args=(r,)) for r in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "a", "b": "b", "c": "c"}


def test_service_outside_resources_is_refused_before_any_network_call(fake_sidecar, token_file):
    token_file(WRITER)

    @hexr_agent(name="read-only-agent", tenant="acme-corp", resources=["aws_s3:read"])
    def run():
        with pytest.raises(CredentialError) as refused:
            hexr_tool("aws_ec2")
        return refused.value

    error = run()
    assert (error.status, error.type, error.message) == (403, "CredentialError", "the service is not in this agent's resources")
    assert fake_sidecar.calls() == 0


def test_resources_qualifier_allows_the_service(fake_sidecar, token_file):
    token_file(WRITER)

    @hexr_agent(name="read-only-agent", tenant="acme-corp", resources=["aws_s3:read"])
    def run():
        return hexr.get_credentials("aws_s3")

    assert run().service == "aws_s3"
    assert fake_sidecar.calls() == 1


def test_empty_resources_allow_nothing_and_none_is_unrestricted(fake_sidecar, token_file):
    token_file(WRITER)

    @hexr_agent(name="crew", tenant="acme-corp", role="editor", resources=[])
    def editor():
        hexr.get_credentials("aws_s3")

    with pytest.raises(CredentialError):
        editor()
    assert fake_sidecar.calls() == 0


def test_invalid_names_and_set_agent_context(tmp_path):
    with pytest.raises(ValueError):
        hexr_agent(name="a/b", tenant="t")
    with pytest.raises(ValueError):
        hexr_agent(name="..", tenant="t")
    with pytest.raises(TypeError):
        hexr_agent(name="a", tenant="t", resources="aws_s3")

    def in_fresh_context():
        HexrContext.set_agent_context(agent_name="content-crew", tenant="acme-corp", framework="crewai", resources=["aws_s3"], process_role="writer")
        return current_agent()

    import contextvars

    context = contextvars.copy_context().run(in_fresh_context)
    assert context.process_role == "writer" and current_agent() is None
    assert (tmp_path / "hexr-context" / "content-crew-writer.json").exists()


def test_marker_write_failure_is_not_fatal(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("HEXR_CONTEXT_DIR", str(blocker / "sub"))

    @hexr_agent(name="a", tenant="t")
    def run():
        return "ran"

    assert run() == "ran"


def test_per_role_resources_pick_the_roles_own_list():
    per_role = {"researcher": ["gcp_bigquery:read"], "writer": ["aws_s3"], "*": ["azure_storage"]}
    assert make_context("crew", "acme-corp", resources=per_role, role="researcher").resources == ("gcp_bigquery:read",)
    assert make_context("crew", "acme-corp", resources=per_role, role="editor").resources == ("azure_storage",)
    assert make_context("crew", "acme-corp", resources={"writer": ["aws_s3"]}, role="editor").resources == ()
