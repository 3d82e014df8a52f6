"""The seeds' data pipeline, with grants the platform can enforce: S3 read-only and BigQuery.

The seeds write `resources=["aws_s3:read", "gcp_bigquery:query"]`, but the injector enforces only
the `read` scope (a grant it cannot enforce is denied), so `hexr build` rejects `:query`; this is
policy/data.json's grant for data-pipeline. A sample for `hexr build`: parsed, never run.
"""

import hexr as h

SERVICES = ["aws_s3:read", "gcp_bigquery"]


@h.hexr_agent(name="data-pipeline", tenant="acme-corp", resources=SERVICES)
def pipeline(query: str):
    s3 = h.hexr_tool("aws_s3")  # allowed (read-only S3)
    bq = h.hexr_tool("gcp_bigquery")  # allowed
    return s3, bq
