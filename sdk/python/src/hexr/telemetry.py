"""OpenTelemetry, through opentelemetry-api only: without an SDK configured, every call is a no-op.

Per hexr_tool() call:
  span    hexr.tool.invoke   service, region, cache_tier ("L1" for an in-process hit, else the
                             sidecar's x-hexr-cache: L1, L2, L3, L1-stale), duration_ms (the
                             credential resolution), hexr.cache.source ("process" | "sidecar"),
                             hexr.spiffe_id, and the agent context (hexr.agent, hexr.tenant,
                             hexr.process_role) when there is one. An error sets the span's status
                             to ERROR with error.type and hexr.error.status.
  metrics hexr.tool.invocations (counter, by service), hexr.tool.duration (histogram, ms, by
          service and cache_tier), hexr.cache.hits (counter: the credential came from a cache,
          in-process L1 or the sidecar's L1/L2/L1-stale) and hexr.cache.misses (counter: it took a
          full exchange, L3), both by service, cache_tier and source.

Per hexr.vault call:
  span    hexr.vault.{put|get|list|delete|get_many}   hexr.vault.operation, hexr.vault.name (or
                             hexr.vault.names for a batch), hexr.vault.scope, hexr.vault.version,
                             hexr.vault.outcome (the HTTP status, or "invalid" for a request the
                             SDK refused itself). Never a value: not in an attribute, an event, or
                             the status description (the error's type only).

A refreshing client (boto3, google-auth, azure-core) that re-exchanges later is not a tool
invocation: it emits the span hexr.credential.refresh and counts in hexr.cache.hits/misses, not in
hexr.tool.invocations or hexr.tool.duration, so those count what the agent's code asked for.
Never a credential or a token in any attribute.
"""

from __future__ import annotations

from typing import Optional

from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from ._version import __version__

_tracer = trace.get_tracer("hexr", __version__)
_meter = metrics.get_meter("hexr", __version__)

invocations = _meter.create_counter("hexr.tool.invocations", unit="1", description="hexr_tool() calls, by service")
duration = _meter.create_histogram("hexr.tool.duration", unit="ms", description="hexr_tool() credential resolution time")
cache_hits = _meter.create_counter("hexr.cache.hits", unit="1", description="credentials served from a cache (in-process L1, the sidecar's L1/L2)")
cache_misses = _meter.create_counter("hexr.cache.misses", unit="1", description="credentials that took a full exchange (L3)")

TOOL_SPAN = "hexr.tool.invoke"
REFRESH_SPAN = "hexr.credential.refresh"
VAULT_SPAN_PREFIX = "hexr.vault."


def tracer() -> trace.Tracer:
    return _tracer


def record_resolution(service: str, cache_tier: str, source: str, duration_ms: Optional[float], invocation: bool) -> None:
    attrs = {"service": service, "cache_tier": cache_tier, "source": source}
    if cache_tier == "L3":
        cache_misses.add(1, attrs)
    else:
        cache_hits.add(1, attrs)
    if invocation and duration_ms is not None:
        duration.record(duration_ms, {"service": service, "cache_tier": cache_tier})


def mark_error(span: trace.Span, error: BaseException) -> None:
    kind = getattr(error, "type", None) or type(error).__name__
    span.set_attribute("error.type", kind)
    status = getattr(error, "status", None)
    if isinstance(status, int):
        span.set_attribute("hexr.error.status", status)
    span.set_status(Status(StatusCode.ERROR, kind))
