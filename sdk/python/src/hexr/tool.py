"""hexr_tool(): an authenticated client of a cloud service, from the agent's SPIFFE identity."""

from __future__ import annotations

import os
import time
from typing import Any, Optional

from . import telemetry
from .context import AgentContext, current_agent
from .contract import DEFAULT_REGIONS, is_region, split_service
from .errors import NOT_IN_RESOURCES, BadRequestError, CredentialError, HexrError
from .identity import JwtSource, default_source
from .providers import builder_for
from .sidecar import Credential, Resolution, exchanger


def _check_service(service: object):
    parts = split_service(service) if isinstance(service, str) else None
    if parts is None:
        raise BadRequestError(
            "'service' must be {aws|gcp|azure}_{name}, the name 1 to 48 characters of a-z0-9_- starting with a-z0-9"
        )
    return parts


def _region_for(provider: str, region: Optional[str]) -> str:
    if region is not None:
        if not is_region(region):
            raise BadRequestError("'region' must match ^[a-z0-9-]{1,32}$")
        return region
    configured = os.environ.get("HEXR_%s_REGION" % provider.upper())
    if configured and is_region(configured):
        return configured
    return DEFAULT_REGIONS[provider]


def _identity(context: Optional[AgentContext]) -> JwtSource:
    if context is not None and context.identity is not None:
        return context.identity
    return default_source()


def _span_attributes(span: Any, context: Optional[AgentContext]) -> None:
    if context is not None:
        span.set_attribute("hexr.agent", context.agent_name)
        span.set_attribute("hexr.tenant", context.tenant)
        span.set_attribute("hexr.process_role", context.process_role)


def _record(span: Any, resolution: Resolution) -> None:
    span.set_attribute("cache_tier", resolution.cache_tier)
    span.set_attribute("duration_ms", resolution.duration_ms)
    span.set_attribute("hexr.cache.source", resolution.source)
    span.set_attribute("hexr.spiffe_id", resolution.credential.spiffe_id)


class _Refresher:
    """What a client's credential object calls to get a fresh credential: resolves again for the
    same identity, service and region, asking for at least `min_ttl` seconds of life."""

    def __init__(self, identity: JwtSource, service: str, region: str, context: Optional[AgentContext]) -> None:
        self.identity = identity
        self.service = service
        self.region = region
        self.context = context
        #: how many times the client asked (tests)
        self.calls = 0

    def __call__(self, min_ttl: float) -> Credential:
        self.calls += 1
        with telemetry.tracer().start_as_current_span(telemetry.REFRESH_SPAN) as span:
            span.set_attribute("service", self.service)
            span.set_attribute("region", self.region)
            _span_attributes(span, self.context)
            try:
                resolution = exchanger().resolve(self.identity, self.service, self.region, min_ttl)
            except HexrError as error:
                telemetry.mark_error(span, error)
                raise
            _record(span, resolution)
            telemetry.record_resolution(self.service, resolution.cache_tier, resolution.source, resolution.duration_ms, invocation=False)
            return resolution.credential


def _resolve(service: str, region: Optional[str], span: Any):
    provider, name = _check_service(service)
    effective = _region_for(provider, region)
    span.set_attribute("service", service)
    span.set_attribute("region", effective)
    context = current_agent()
    _span_attributes(span, context)
    telemetry.invocations.add(1, {"service": service})
    if context is not None and not context.allows(service):
        raise CredentialError(NOT_IN_RESOURCES, status=403)
    return provider, name, effective, context


def hexr_tool(service: str, region: Optional[str] = None, **kwargs: Any) -> Any:
    """An authenticated client of `service` (see the package README for the table), whose
    credentials come from the pod's sidecar and refresh themselves.

    region: overrides the provider's default (HEXR_{AWS|GCP|AZURE}_REGION, else the contract's).
    kwargs: passed to the client's constructor (endpoint_url, client_options, account_url, ...).

    Raises BadRequestError (not a service, bad region), CredentialError (not in the agent's
    resources: before any network call; denied, unavailable), AuthenticationError (no identity).
    """
    with telemetry.tracer().start_as_current_span(telemetry.TOOL_SPAN) as span:
        started = time.perf_counter()
        try:
            provider, name, effective, context = _resolve(service, region, span)
            build = builder_for(service, provider, name)
            identity = _identity(context)
            resolution = exchanger().resolve(identity, service, effective)
            _record(span, resolution)
            telemetry.record_resolution(service, resolution.cache_tier, resolution.source, resolution.duration_ms, invocation=True)
            refresher = _Refresher(identity, service, effective, context)
            client = build(resolution.credential, refresher, effective, region is not None, kwargs)
            span.set_attribute("hexr.client_build_ms", (time.perf_counter() - started) * 1000.0 - resolution.duration_ms)
            return client
        except HexrError as error:
            telemetry.mark_error(span, error)
            raise


def get_credentials(service: str, region: Optional[str] = None) -> Credential:
    """The credential itself (for a client hexr_tool() does not build): same checks, cache,
    span and metrics as hexr_tool(). It does not refresh itself: call again when it nears
    expiry (Credential.seconds_left())."""
    with telemetry.tracer().start_as_current_span(telemetry.TOOL_SPAN) as span:
        try:
            _, _, effective, context = _resolve(service, region, span)
            resolution = exchanger().resolve(_identity(context), service, effective)
            _record(span, resolution)
            telemetry.record_resolution(service, resolution.cache_tier, resolution.source, resolution.duration_ms, invocation=True)
            return resolution.credential
        except HexrError as error:
            telemetry.mark_error(span, error)
            raise
