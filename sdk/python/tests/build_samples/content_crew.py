"""The seeds' content crew (docs: per-process identity): one agent, three CrewAI roles, each run as
its own process (`hexr run --role researcher -- python content_crew.py`) with its own SPIFFE ID.

A sample for `hexr build` (tests/test_build.py): it is parsed, never run, so crewai need not be
installed.
"""

import os

from crewai import Agent, Crew, Task

from hexr import hexr_agent, hexr_tool

ROLE = os.environ.get("HEXR_PROCESS_ROLE", "main")


@hexr_agent(
    name="content-crew",
    tenant="acme-corp",
    resources={"researcher": ["gcp_bigquery:read"], "writer": ["aws_s3"], "editor": []},
    role=ROLE,
)
def run(topic: str) -> str:
    researcher = Agent(role="researcher", goal="Find facts about %s" % topic, backstory="A careful analyst.")
    writer = Agent(role="writer", goal="Write an article", backstory="A clear writer.")
    editor = Agent(role="editor", goal="Polish the article", backstory="A strict editor.")
    agents = {"researcher": researcher, "writer": writer, "editor": editor}
    if ROLE == "researcher":
        hexr_tool("gcp_bigquery")
    task = Task(description="Work on %s as the %s" % (topic, ROLE), expected_output="text", agent=agents[ROLE])
    return str(Crew(agents=[agents[ROLE]], tasks=[task]).kickoff())
