"""The seeds' multi-cloud research analyst: one agent, one process, the default role `main`.

A sample for `hexr build` (tests/test_build.py): parsed, never run.
"""

from hexr import hexr_agent, hexr_tool


@hexr_agent(
    name="research-analyst",
    tenant="acme-corp",
    resources=["aws_s3", "aws_dynamodb", "aws_bedrock", "gcp_vertexai", "azure_openai"],
)
def analyse(question: str) -> dict:
    s3 = hexr_tool("aws_s3")
    table = hexr_tool("aws_dynamodb").Table("findings")
    bedrock = hexr_tool("aws_bedrock")
    vertex = hexr_tool("gcp_vertexai")
    openai = hexr_tool("azure_openai", azure_endpoint="https://acme.openai.azure.com")
    return {"question": question, "clients": [s3, table, bedrock, vertex, openai]}
