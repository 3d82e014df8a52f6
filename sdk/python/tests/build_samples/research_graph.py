"""A LangGraph agent: two ReAct agents and a review step, one process role each.

A sample for `hexr build` (tests/test_build.py): parsed, never run, so langgraph need not be
installed.
"""

import os

from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent

from hexr import hexr_agent as agent
from hexr import hexr_tool

MODEL = "google_genai:gemini-2.0-flash"

researcher = create_react_agent(MODEL, tools=[], name="researcher")
writer = create_react_agent(MODEL, tools=[], name="writer")


def reviewer(state: MessagesState) -> dict:
    bucket = hexr_tool("gcp_storage").bucket("reviews")
    return {"messages": state["messages"], "bucket": bucket.name}


builder = StateGraph(MessagesState)
builder.add_node(researcher)
builder.add_node(writer)
builder.add_node(reviewer)
builder.add_edge(START, "researcher")
builder.add_edge("researcher", "writer")
builder.add_edge("writer", "reviewer")
builder.add_edge("reviewer", END)
graph = builder.compile()


@agent(name="research-graph", tenant="acme-corp", resources=["gcp_vertexai", "gcp_storage"],
       role=os.environ.get("HEXR_PROCESS_ROLE", "main"))
def run(question: str):
    return graph.invoke({"messages": [("user", question)]})
