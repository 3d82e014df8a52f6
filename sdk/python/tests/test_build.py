"""hexr build: roles found in the source without running it, and the process-context files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hexr import cli
from hexr.build import discover, slug

SAMPLES = Path(__file__).parent / "build_samples"
CREW_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "python" / "content_crew" / "crew.py"


@pytest.fixture
def hexr_build(capsys, tmp_path, monkeypatch):
    """Runs `hexr build ARGS` in tmp_path (so the default out is tmp_path/.hexr); (code, out, err)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        code = cli.main(["build", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_source(directory: Path, text: str, name: str = "agent.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def contexts(out: Path) -> dict:
    directory = out / "process-contexts"
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.iterdir())}


def tree(agent: str, roles: list, out: str = ".hexr", removed=()) -> str:
    def branch(items):
        return ["    %s %s" % ("└──" if i == len(items) - 1 else "├──", item) for i, item in enumerate(items)]

    lines = ["Discovered agents:", "  " + agent, *branch(roles), "", "Generated:", "  %s/process-contexts/" % out]
    lines += branch([r.split(" ")[0] + ".json" for r in roles])
    if removed:
        lines += ["", "Removed:", "  %s/process-contexts/" % out, *branch(list(removed))]
    return "\n".join(lines) + "\n"


# ---- the seeds' samples ------------------------------------------------------------------------------


def test_content_crew_prints_the_seeds_tree_and_writes_one_context_per_role(hexr_build, tmp_path):
    code, out, err = hexr_build(SAMPLES / "content_crew.py", "--tenant", "acme-corp")
    assert (code, err) == (0, "")
    assert out == (
        "Discovered agents:\n"
        "  content-crew (CrewAI framework)\n"
        "    ├── researcher (Agent role)\n"
        "    ├── writer (Agent role)\n"
        "    └── editor (Agent role)\n"
        "\n"
        "Generated:\n"
        "  .hexr/process-contexts/\n"
        "    ├── researcher.json\n"
        "    ├── writer.json\n"
        "    └── editor.json\n"
    )
    found = contexts(tmp_path / ".hexr")
    assert list(found) == ["editor.json", "researcher.json", "writer.json"]  # nothing else: no temporary files
    grants = {"researcher": ["gcp_bigquery:read"], "writer": ["aws_s3"], "editor": []}
    for uid, role in enumerate(("researcher", "writer", "editor"), start=61000):
        assert found["%s.json" % role] == {
            "agent_name": "content-crew",
            "tenant": "acme-corp",
            "process_role": role,
            "framework": "crewai",
            "trust_domain": "hexr.local",
            "spiffe_id": "spiffe://hexr.local/agent/acme-corp/content-crew/%s" % role,
            "resources": grants[role],
            "unix_uid": uid,
            "source": "content_crew.py",
        }
        path = tmp_path / ".hexr" / "process-contexts" / ("%s.json" % role)
        assert oct(path.stat().st_mode & 0o777) == "0o644"  # the registrar and every role's uid read it
    assert list(json.loads((tmp_path / ".hexr/process-contexts/researcher.json").read_text())) == [
        "agent_name", "tenant", "process_role", "framework", "trust_domain", "spiffe_id", "resources", "unix_uid", "source"]


def test_research_analyst_is_one_main_role(hexr_build, tmp_path):
    code, out, err = hexr_build(SAMPLES / "research_analyst.py", "--tenant", "acme-corp", "--trust-domain", "hexr.cloud")
    assert (code, err) == (0, "")
    assert out == tree("research-analyst", ["main (default role)"])
    assert contexts(tmp_path / ".hexr") == {"main.json": {
        "agent_name": "research-analyst", "tenant": "acme-corp", "process_role": "main", "framework": None,
        "trust_domain": "hexr.cloud", "spiffe_id": "spiffe://hexr.cloud/agent/acme-corp/research-analyst/main",
        "resources": ["aws_s3", "aws_dynamodb", "aws_bedrock", "gcp_vertexai", "azure_openai"],
        "unix_uid": 61000, "source": "research_analyst.py"}}


def test_data_pipeline_scoped_resources_through_a_module_constant(hexr_build, tmp_path):
    code, out, err = hexr_build(SAMPLES / "data_pipeline.py", "--tenant", "acme-corp", "--uid-base", "70000")
    assert (code, err) == (0, "")
    assert out == tree("data-pipeline", ["main (default role)"])
    context = contexts(tmp_path / ".hexr")["main.json"]
    assert (context["resources"], context["unix_uid"]) == (["aws_s3:read", "gcp_bigquery"], 70000)


def test_the_seeds_query_scope_is_refused(hexr_build, tmp_path):
    # The seeds' data pipeline asks for "gcp_bigquery:query": not a scope the injector enforces.
    text = (SAMPLES / "data_pipeline.py").read_text().replace('"gcp_bigquery"]', '"gcp_bigquery:query"]')
    source = write_source(tmp_path, text, "pipeline.py")
    code, out, err = hexr_build(source, "--tenant", "acme-corp")
    assert (code, out) == (2, "")
    assert err == "%s:13: error: unknown scope 'query' in 'gcp_bigquery:query': the injector enforces only 'read'\n" % source
    assert not (tmp_path / ".hexr").exists()


def test_langgraph_agents_and_nodes(hexr_build, tmp_path):
    code, out, err = hexr_build(SAMPLES / "research_graph.py", "--tenant", "acme-corp")
    assert (code, err) == (0, "")
    assert out == tree("research-graph (LangGraph framework)",
                       ["researcher (LangGraph agent)", "writer (LangGraph agent)", "reviewer (LangGraph node)"])
    found = contexts(tmp_path / ".hexr")
    assert {c["process_role"]: c["unix_uid"] for c in found.values()} == {"researcher": 61000, "writer": 61001, "reviewer": 61002}
    assert {c["framework"] for c in found.values()} == {"langgraph"}


def test_the_content_crew_example(hexr_build, tmp_path):
    """examples/python/content_crew/crew.py takes its role from HEXR_PROCESS_ROLE at run time and
    declares the roles it runs as in HEXR_ROLES, which build reads."""
    code, out, err = hexr_build(CREW_EXAMPLE, "--tenant", "acme-corp", "--out", "crew")
    assert (code, err) == (0, "")
    assert out == tree("content-crew", ["researcher (HEXR_ROLES)", "writer (HEXR_ROLES)", "editor (HEXR_ROLES)"], "crew")
    found = contexts(tmp_path / "crew")
    assert [found[r + ".json"]["resources"] for r in ("researcher", "writer", "editor")] == [["aws_s3", "gcp_bigquery"]] * 3
    assert found["writer.json"]["framework"] is None


def test_an_environment_role_without_hexr_roles_is_the_default_role(hexr_build, tmp_path):
    text = CREW_EXAMPLE.read_text()
    declaration = 'HEXR_ROLES = ("researcher", "writer", "editor")\n'
    assert declaration in text
    source = write_source(tmp_path, text.replace(declaration, ""), "crew.py")
    code, out, err = hexr_build(source, "--tenant", "acme-corp")
    assert (code, err) == (0, "")
    assert out == tree("content-crew", ["main (default role)"])


# ---- rebuilds -------------------------------------------------------------------------------------


CREW = """
    import os
    from crewai import Agent
    from hexr import hexr_agent

    @hexr_agent(name="crew", tenant="acme-corp", role=os.environ.get("HEXR_PROCESS_ROLE"))
    def run():
        return [%s]
"""


def crew_source(directory: Path, *roles: str) -> Path:
    return write_source(directory, CREW % ", ".join('Agent(role="%s")' % r for r in roles), "crew.py")


def test_uids_are_stable_across_rebuilds_and_stale_contexts_are_removed(hexr_build, tmp_path):
    source = crew_source(tmp_path, "researcher", "writer", "editor")
    assert hexr_build(source)[0] == 0
    before = {n: c["unix_uid"] for n, c in contexts(tmp_path / ".hexr").items()}
    assert before == {"researcher.json": 61000, "writer.json": 61001, "editor.json": 61002}

    # writer gone, a new role first in the source: the others keep their uids, the new one gets
    # a uid no file had (not writer's: its SPIRE entry may still be there).
    crew_source(tmp_path, "fact-checker", "researcher", "editor")
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("crew (CrewAI framework)", ["fact-checker (Agent role)", "researcher (Agent role)", "editor (Agent role)"],
                       removed=["writer.json"])
    after = {n: c["unix_uid"] for n, c in contexts(tmp_path / ".hexr").items()}
    assert after == {"fact-checker.json": 61003, "researcher.json": 61000, "editor.json": 61002}

    # Same source again: nothing moves, nothing removed.
    code, out, _ = hexr_build(source)
    assert "Removed" not in out
    assert {n: c["unix_uid"] for n, c in contexts(tmp_path / ".hexr").items()} == after

    # Another --uid-base does not move existing roles; new ones start from it.
    crew_source(tmp_path, "fact-checker", "researcher", "editor", "publisher")
    assert hexr_build(source, "--uid-base", "5000")[0] == 0
    assert {n: c["unix_uid"] for n, c in contexts(tmp_path / ".hexr").items()} == dict(after, **{"publisher.json": 5000})


def test_a_new_trust_domain_is_a_new_identity(hexr_build, tmp_path):
    source = crew_source(tmp_path, "researcher")
    assert hexr_build(source)[0] == 0
    assert hexr_build(source, "--trust-domain", "prod.example")[0] == 0
    (context,) = contexts(tmp_path / ".hexr").values()
    assert (context["spiffe_id"], context["unix_uid"]) == ("spiffe://prod.example/agent/acme-corp/crew/researcher", 61001)


def test_two_files_with_one_uid_never_give_two_roles_that_uid(hexr_build, tmp_path):
    source = crew_source(tmp_path, "a", "b")
    assert hexr_build(source)[0] == 0
    directory = tmp_path / ".hexr" / "process-contexts"
    b = json.loads((directory / "b.json").read_text())
    b["unix_uid"] = 61000  # edited by hand to a's uid
    (directory / "b.json").write_text(json.dumps(b))
    assert hexr_build(source)[0] == 0
    assert {n: c["unix_uid"] for n, c in contexts(tmp_path / ".hexr").items()} == {"a.json": 61000, "b.json": 61001}


def test_json_output(hexr_build, tmp_path):
    code, out, err = hexr_build(SAMPLES / "content_crew.py", "--tenant", "acme-corp", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert {k: report[k] for k in ("agent_name", "tenant", "trust_domain", "framework", "removed")} == {
        "agent_name": "content-crew", "tenant": "acme-corp", "trust_domain": "hexr.local", "framework": "crewai", "removed": []}
    assert [(r["process_role"], r["declared_by"], r["line"], r["unix_uid"], r["file"]) for r in report["roles"]] == [
        ("researcher", "Agent role", 24, 61000, "researcher.json"),
        ("writer", "Agent role", 25, 61001, "writer.json"),
        ("editor", "Agent role", 26, 61002, "editor.json"),
    ]
    assert report["roles"][0]["spiffe_id"] == "spiffe://hexr.local/agent/acme-corp/content-crew/researcher"
    assert len(contexts(tmp_path / ".hexr")) == 3


# ---- what discovery recognises -------------------------------------------------------------------


def test_crewai_titles_become_slugs_and_the_output_says_so(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        import crewai
        from hexr import hexr_agent

        @hexr_agent("crew", "acme-corp")
        class Crew:
            lead = crewai.Agent(role="Senior Researcher", goal="g")
            copy = crewai.Agent(role="Copy Editor (Night Shift)", goal="g")
            checker = crewai.Agent(role="fact_checker", goal="g")
    """)
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("crew (CrewAI framework)", [
        'senior-researcher (Agent role "Senior Researcher")',
        'copy-editor-night-shift (Agent role "Copy Editor (Night Shift)")',
        "fact_checker (Agent role)",
    ])
    assert slug("Détective  Senior") == "detective-senior"


def test_aliases_async_functions_and_the_decorators_framework(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        from hexr import hexr_agent as agent
        from langchain.agents import AgentExecutor, create_tool_calling_agent

        triage = AgentExecutor(agent=create_tool_calling_agent(None, [], None), tools=[], name="triage")
        billing = AgentExecutor(agent=None, tools=[], name="billing")

        @agent(name="helpdesk", tenant="acme-corp", framework="langchain-v0")
        async def run():
            return triage, billing
    """)
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("helpdesk (langchain-v0 framework)", ["triage (LangChain agent)", "billing (LangChain agent)"])


def test_a_framework_with_no_named_roles_and_a_fixed_role(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        from langchain.agents import create_tool_calling_agent
        import hexr

        @hexr.hexr_agent(name="solo", tenant="acme-corp", role="researcher")
        def run():
            return create_tool_calling_agent(None, [], None)
    """)
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("solo (LangChain framework)", ["researcher (role)"])


def test_an_unnamed_langgraph_agent_is_the_framework_not_a_role(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        from langgraph.prebuilt import create_react_agent
        from hexr import hexr_agent

        graph = create_react_agent("openai:gpt-4o", tools=[])

        @hexr_agent(name="solo-graph", tenant="acme-corp")
        def run(question):
            return graph.invoke(question)
    """)
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("solo-graph (LangGraph framework)", ["main (default role)"])
    assert contexts(tmp_path / ".hexr")["main.json"]["framework"] == "langgraph"


def test_per_role_resources_name_the_roles(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        import os
        from hexr import hexr_agent

        GRANTS = {"ingest": ["aws_s3:read"], "load": ["gcp_bigquery"], "*": ["gcp_storage"]}

        @hexr_agent(name="etl", tenant="acme-corp", resources=GRANTS, role=os.environ.get("HEXR_PROCESS_ROLE") or "ingest")
        def run():
            pass
    """)
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert out == tree("etl", ["ingest (resources)", "load (resources)"])
    found = contexts(tmp_path / ".hexr")
    assert (found["ingest.json"]["resources"], found["load.json"]["resources"]) == (["aws_s3:read"], ["gcp_bigquery"])


def test_star_grants_go_to_roles_the_dict_does_not_name(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        import os
        from hexr import hexr_agent
        HEXR_ROLES = ["ingest", "report"]

        @hexr_agent(name="etl", tenant="acme-corp", resources={"ingest": ["aws_s3"], "*": ["gcp_storage"]}, role=os.getenv("HEXR_PROCESS_ROLE"))
        def run():
            pass
    """)
    assert hexr_build(source)[0] == 0
    found = contexts(tmp_path / ".hexr")
    assert (found["ingest.json"]["resources"], found["report.json"]["resources"]) == (["aws_s3"], ["gcp_storage"])


def test_the_env_default_is_the_fallback_role(hexr_build, tmp_path):
    source = write_source(tmp_path, """
        import os
        from hexr import hexr_agent
        ROLE = os.environ.get("HEXR_PROCESS_ROLE", "worker")

        @hexr_agent(name="batch", tenant="acme-corp", role=ROLE)
        def run():
            pass
    """)
    code, out, _ = hexr_build(source)
    assert (code, out) == (0, tree("batch", ["worker (default role)"]))


def test_the_source_is_never_run(hexr_build, tmp_path):
    marker = tmp_path / "ran"
    source = write_source(tmp_path, """
        open(%r, "w").write("ran")
        import no_such_module_anywhere
        from hexr import hexr_agent

        @hexr_agent(name="quiet", tenant="acme-corp")
        def run():
            pass
        raise SystemExit(9)
    """ % str(marker))
    code, out, err = hexr_build(source)
    assert (code, err) == (0, "")
    assert not marker.exists()


def test_one_agent_decorated_twice_is_one_agent(tmp_path):
    source = write_source(tmp_path, """
        from hexr import hexr_agent

        @hexr_agent(name="twin", tenant="acme-corp")
        def run():
            pass

        @hexr_agent(name="twin", tenant="acme-corp")
        async def run_async():
            pass
    """)
    discovery = discover(str(source))
    assert (discovery.agent_name, [r.name for r in discovery.roles]) == ("twin", ["main"])


def test_discover_takes_source_text():
    discovery = discover("inline.py", 'from hexr import hexr_agent\n@hexr_agent(name="x", tenant="t", role="r")\ndef f(): pass\n')
    assert (discovery.agent_name, discovery.tenant, [r.name for r in discovery.roles], discovery.line) == ("x", "t", ["r"], 2)


# ---- bad input: a clear error with its line, exit 2, nothing written ------------------------------


BAD = {
    "syntax": ("def broken(:\n    pass\n", "1: error: syntax error: invalid syntax"),
    "no_agent": ("def run():\n    pass\n", "error: no @hexr_agent(...) found: hexr build needs the agent's entry point decorated with @hexr_agent(name=..., tenant=...)"),
    "bare_decorator": ("from hexr import hexr_agent\n@hexr_agent\ndef run(): pass\n", "2: error: @hexr_agent must be called: @hexr_agent(name=..., tenant=...)"),
    "name_not_literal": ("from hexr import hexr_agent\n@hexr_agent(name=make_name(), tenant='acme-corp')\ndef run(): pass\n",
                         "2: error: @hexr_agent name must be a string literal (or a module-level string constant)"),
    "name_missing": ("from hexr import hexr_agent\n@hexr_agent(tenant='acme-corp')\ndef run(): pass\n", '2: error: @hexr_agent needs name="..."'),
    "name_invalid": ("from hexr import hexr_agent\n@hexr_agent(name='content crew', tenant='acme-corp')\ndef run(): pass\n",
                     "2: error: agent name 'content crew' is not valid: 1 to 128 characters of A-Za-z0-9._- (not '.' or '..')"),
    "role_invalid": ("import os\nfrom hexr import hexr_agent\nHEXR_ROLES = ('writer', '..')\n@hexr_agent(name='a', tenant='acme-corp', role=os.environ.get('HEXR_PROCESS_ROLE'))\ndef run(): pass\n",
                     "3: error: role '..' is not valid: 1 to 128 characters of A-Za-z0-9._- (not '.' or '..')"),
    "title_empty": ("from crewai import Agent\nfrom hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp')\ndef run():\n    return Agent(role='???')\n",
                    "5: error: role '' (from '???') is not valid: 1 to 128 characters of A-Za-z0-9._- (not '.' or '..')"),
    "role_not_static": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp', role=pick())\ndef run(): pass\n",
                        '2: error: role must be a string literal, or os.environ.get("HEXR_PROCESS_ROLE", ...) for a role per process'),
    "unknown_service": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp',\n  resources=['aws_s3', 'aws_s4'])\ndef run(): pass\n",
                        "3: error: unknown service 'aws_s4' in resources (the catalog: aws_s3, aws_ec2, aws_dynamodb, aws_sqs, aws_lambda, aws_bedrock, gcp_bigquery, gcp_storage, gcp_vertexai, gcp_pubsub, azure_storage, azure_cosmosdb, azure_openai, llm_openai, llm_anthropic)"),
    "resources_not_static": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp', resources=load())\ndef run(): pass\n",
                             "2: error: resources must be a literal list or dict (or a module-level constant) for hexr build to read it"),
    "resources_a_string": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp', resources='aws_s3')\ndef run(): pass\n",
                           '2: error: resources must be a list of service names such as "aws_s3" or "aws_s3:read"'),
    "tenant_mismatch": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='globex')\ndef run(): pass\n",
                        "2: error: tenant mismatch: @hexr_agent says tenant='globex' but --tenant is 'acme-corp'"),
    "duplicate_hexr_roles": ("import os\nfrom hexr import hexr_agent\nHEXR_ROLES = ('writer', 'editor', 'writer')\n@hexr_agent(name='a', tenant='acme-corp', role=os.environ.get('HEXR_PROCESS_ROLE'))\ndef run(): pass\n",
                             "3: error: duplicate role 'writer' in HEXR_ROLES: already declared on line 3"),
    "duplicate_crewai": ("from crewai import Agent\nfrom hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp')\ndef run():\n    one = Agent(role='Researcher')\n    two = Agent(role='researcher')\n",
                         "6: error: duplicate role 'researcher' in the Agent roles: already declared on line 5 (from 'Researcher')"),
    "two_agents": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp')\ndef one(): pass\n@hexr_agent(name='b', tenant='acme-corp')\ndef two(): pass\n",
                   "4: error: one agent per source file, and these @hexr_agent differ: 'a' (line 2), 'b' (line 4); put each agent in its own file"),
    "fixed_role_conflict": ("from hexr import hexr_agent\nHEXR_ROLES = ('writer', 'editor')\n@hexr_agent(name='a', tenant='acme-corp', role='writer')\ndef run(): pass\n",
                            "2: error: HEXR_ROLES names 'editor' but @hexr_agent fixes role='writer': use role=os.environ.get(\"HEXR_PROCESS_ROLE\") for a role per process"),
    "framework_role_not_declared": ("from crewai import Agent\nfrom hexr import hexr_agent\nHEXR_ROLES = ('writer',)\n@hexr_agent(name='a', tenant='acme-corp')\ndef run():\n    return Agent(role='Editor')\n",
                                    "6: error: role 'editor' (Agent role) is not in HEXR_ROLES"),
    "grant_for_unknown_role": ("from crewai import Agent\nfrom hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp', resources={'writer': ['aws_s3'], 'edtior': []})\ndef run():\n    return Agent(role='writer'), Agent(role='editor')\n",
                               "3: error: resources grants role 'edtior', which no agent of the framework declares"),
    "crewai_role_not_static": ("from crewai import Agent\nfrom hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp')\ndef run(title):\n    return Agent(role=title)\n",
                               "5: error: CrewAI Agent(role=...) has no literal name, so its role cannot be known before it runs: name it with a literal, or list the roles in HEXR_ROLES = (...)"),
    "unknown_argument": ("from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp', roles=['x'])\ndef run(): pass\n",
                         "2: error: @hexr_agent has no argument 'roles'"),
}


def located(source: Path, expected: str) -> str:
    """path:line: error: ... when `expected` starts with a line number, else path: error: ..."""
    return ("%s:%s" if expected[0].isdigit() else "%s: %s") % (source, expected)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_source_is_a_clear_error_and_writes_nothing(case, hexr_build, tmp_path):
    text, expected = BAD[case]
    source = write_source(tmp_path, text, "%s.py" % case)
    code, out, err = hexr_build(source, "--tenant", "acme-corp")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == located(source, expected)
    assert not (tmp_path / ".hexr").exists()


def test_every_problem_is_reported(hexr_build, tmp_path):
    source = write_source(tmp_path, "from hexr import hexr_agent\n@hexr_agent(name='a b', tenant='acme-corp',\n  resources=['aws_s4', 'gcp_bigquery:query'])\ndef run(): pass\n")
    code, _, err = hexr_build(source)
    assert code == 2
    assert [line.split(": error: ")[1].split(" ")[0:2] for line in err.splitlines()] == [["agent", "name"], ["unknown", "service"], ["unknown", "scope"]]


def test_missing_file(hexr_build, tmp_path):
    code, out, err = hexr_build("nowhere.py", "--tenant", "acme-corp")
    assert (code, out, err) == (2, "", "nowhere.py: error: no such file\n")
    assert not (tmp_path / ".hexr").exists()


def test_no_tenant_anywhere(hexr_build, tmp_path):
    source = write_source(tmp_path, "from hexr import hexr_agent\n@hexr_agent(name='a', tenant=os.environ['TENANT'])\ndef run(): pass\n")
    code, out, err = hexr_build(source)
    assert (code, out, err) == (2, "", "%s:2: error: no tenant: @hexr_agent names none, so pass --tenant\n" % source)


@pytest.mark.parametrize("args, expected", [
    (["--trust-domain", "Hexr.Local"], "error: trust domain 'Hexr.Local' is not valid: 1 to 255 characters of a-z0-9._-"),
    (["--uid-base", "0"], "error: --uid-base must be between 1 and 2147483646"),
    (["--tenant", "acme corp"], "2: error: tenant mismatch: @hexr_agent says tenant='acme-corp' but --tenant is 'acme corp'"),
])
def test_bad_options(args, expected, hexr_build, tmp_path):
    source = write_source(tmp_path, "from hexr import hexr_agent\n@hexr_agent(name='a', tenant='acme-corp')\ndef run(): pass\n")
    code, out, err = hexr_build(source, *args)
    assert (code, out, err.splitlines()[0]) == (2, "", located(source, expected))
    assert not (tmp_path / ".hexr").exists()


def test_an_invalid_tenant_from_the_cli_alone(hexr_build, tmp_path):
    source = write_source(tmp_path, "from hexr import hexr_agent\n@hexr_agent(name='a', tenant=None)\ndef run(): pass\n")
    code, _, err = hexr_build(source, "--tenant", "acme corp")
    assert code == 2 and "is longer than" not in err
    assert not (tmp_path / ".hexr").exists()


def test_an_out_dir_of_another_agent_is_left_alone(hexr_build, tmp_path):
    assert hexr_build(SAMPLES / "research_analyst.py")[0] == 0
    before = contexts(tmp_path / ".hexr")
    code, out, err = hexr_build(SAMPLES / "content_crew.py")
    assert (code, out) == (2, "")
    assert err == ("%s: error: %s belongs to agent 'research-analyst' of tenant 'acme-corp': one agent per output directory, use another --out\n"
                   % (SAMPLES / "content_crew.py", os.path.join(".hexr", "process-contexts", "main.json")))
    assert contexts(tmp_path / ".hexr") == before


def test_a_file_that_is_not_a_context_stops_the_build(hexr_build, tmp_path):
    directory = tmp_path / ".hexr" / "process-contexts"
    directory.mkdir(parents=True)
    (directory / "notes.json").write_text("[1, 2]")
    code, _, err = hexr_build(SAMPLES / "research_analyst.py")
    assert code == 2 and "notes.json is not a process context" in err
    assert sorted(p.name for p in directory.iterdir()) == ["notes.json"]


# ---- the command -----------------------------------------------------------------------------------


def test_the_console_script_and_module(tmp_path):
    script = Path(sys.executable).parent / "hexr"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hexr.cli"]
    done = subprocess.run([*command, "build", str(SAMPLES / "content_crew.py"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Discovered agents:\n  content-crew (CrewAI framework)\n")
    usage = subprocess.run([sys.executable, "-m", "hexr.cli"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "hexr build SOURCE.py" in usage.stderr


# ---- property: any role list round-trips, uids unique and stable ----------------------------------

ROLE_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-", min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(ROLE_NAMES, min_size=1, max_size=8, unique=True), second=st.lists(ROLE_NAMES, min_size=1, max_size=8, unique=True),
       base=st.integers(min_value=1, max_value=2**31 - 100))
def test_roles_round_trip_with_unique_stable_uids(first, second, base):
    from hexr.build import plan, write

    def build(roles, directory):
        text = "import os\nfrom hexr import hexr_agent\nHEXR_ROLES = %r\n@hexr_agent(name='p', tenant='t', role=os.getenv('HEXR_PROCESS_ROLE'))\ndef f(): pass\n" % (tuple(roles),)
        write(plan(discover("p.py", text), None, "hexr.local", directory, base))
        return {c["process_role"]: c for c in contexts(Path(directory)).values()}

    directory = tempfile.mkdtemp(prefix="hexr-build-prop-")
    try:
        one = build(first, directory)
        assert sorted(one) == sorted(first)
        assert all(c["spiffe_id"] == "spiffe://hexr.local/agent/t/p/%s" % r for r, c in one.items())
        assert sorted(c["unix_uid"] for c in one.values()) == list(range(base, base + len(first)))
        two = build(second, directory)
        assert sorted(two) == sorted(second)  # stale ones removed
        uids = [c["unix_uid"] for c in two.values()]
        assert len(set(uids)) == len(uids)
        assert all(two[r]["unix_uid"] == one[r]["unix_uid"] for r in set(first) & set(second))
        assert not set(uids) - {one[r]["unix_uid"] for r in set(first) & set(second)} & {c["unix_uid"] for c in one.values()}
    finally:
        shutil.rmtree(directory)
