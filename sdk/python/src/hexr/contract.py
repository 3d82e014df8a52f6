"""The contract's grammars (contract/contract.json, through the generated _contract.py): services,
regions, agent SPIFFE IDs and cache keys, checked exactly as the filter, the injector and the
bridge check them (contract/vectors.json is run against these functions in the tests)."""

from __future__ import annotations

from typing import NamedTuple, Optional

from . import _contract as C

CATALOG = C.CATALOG
PROVIDERS = C.PROVIDERS
DEFAULT_REGIONS = C.DEFAULT_REGIONS
AZURE_RESOURCES = C.AZURE_RESOURCES
CACHE_TIERS = C.CACHE_TIERS
HEADERS = C.HEADERS


def _all_in(text: str, chars: str) -> bool:
    return all(ch in chars for ch in text)


def split_service(service: str) -> Optional[tuple]:
    """(provider, name) of a valid service, else None."""
    if not isinstance(service, str):
        return None
    provider, sep, name = service.partition(C.SERVICE_SEPARATOR)
    if not sep or provider not in C.PROVIDERS:
        return None
    if not 1 <= len(name) <= C.SERVICE_NAME_MAX:
        return None
    if name[0] not in C.SERVICE_NAME_FIRST or not _all_in(name[1:], C.SERVICE_NAME_REST):
        return None
    return provider, name


def is_service(service: object) -> bool:
    return isinstance(service, str) and split_service(service) is not None


def provider_of(service: str) -> str:
    parts = split_service(service)
    if parts is None:
        raise ValueError("not a service")
    return parts[0]


def is_region(region: object) -> bool:
    return (
        isinstance(region, str)
        and C.REGION_MIN <= len(region) <= C.REGION_MAX
        and _all_in(region, C.REGION_CHARS)
    )


def is_served_region(provider: str, region: str) -> bool:
    return region in C.REGIONS.get(provider, ())


def is_path_segment(segment: object) -> bool:
    return (
        isinstance(segment, str)
        and C.PATH_SEGMENT_MIN <= len(segment) <= C.PATH_SEGMENT_MAX
        and segment not in C.PATH_SEGMENT_FORBIDDEN
        and _all_in(segment, C.PATH_SEGMENT_CHARS)
    )


class AgentId(NamedTuple):
    trust_domain: str
    tenant: str
    agent: str
    role: str


def parse_agent_spiffe_id(value: object) -> Optional[AgentId]:
    """spiffe://{trust-domain}/agent/{tenant}/{agent}/{role} (at most 400 bytes), else None."""
    if not isinstance(value, str) or not value.startswith(C.SPIFFE_SCHEME):
        return None
    try:
        if len(value.encode("utf-8")) > C.SPIFFE_ID_MAX:
            return None
    except UnicodeEncodeError:
        return None
    parts = value[len(C.SPIFFE_SCHEME):].split("/")
    if len(parts) != 5 or parts[1] != C.SPIFFE_KIND:
        return None
    trust_domain, _, tenant, agent, role = parts
    if not (C.TRUST_DOMAIN_MIN <= len(trust_domain) <= C.TRUST_DOMAIN_MAX and _all_in(trust_domain, C.TRUST_DOMAIN_CHARS)):
        return None
    if not all(is_path_segment(p) for p in (tenant, agent, role)):
        return None
    return AgentId(trust_domain, tenant, agent, role)


def is_agent_spiffe_id(value: object) -> bool:
    return parse_agent_spiffe_id(value) is not None


def credential_key(spiffe_id: str, service: str, region: str) -> str:
    """cred:{spiffe-id}:{service}:{region}, the key every tier uses."""
    return C.CREDENTIAL_KEY_PREFIX + C.KEY_SEPARATOR.join((spiffe_id, service, region))


def lock_key(key: str) -> str:
    return C.LOCK_KEY_PREFIX + key


def is_credential_key(key: object) -> bool:
    """A well-formed credential key: its SPIFFE ID, service and region each valid, within max bytes."""
    if not isinstance(key, str) or not key.startswith(C.CREDENTIAL_KEY_PREFIX):
        return False
    try:
        if len(key.encode("utf-8")) > C.KEY_MAX_BYTES:
            return False
    except UnicodeEncodeError:
        return False
    body = key[len(C.CREDENTIAL_KEY_PREFIX):]
    # The SPIFFE ID holds one ':' (after the scheme); service and region hold none.
    head, sep, region = body.rpartition(C.KEY_SEPARATOR)
    if not sep:
        return False
    spiffe_id, sep, service = head.rpartition(C.KEY_SEPARATOR)
    return bool(sep) and is_agent_spiffe_id(spiffe_id) and is_service(service) and is_region(region)


def is_secret_name(name: object) -> bool:
    """A vault secret's name (contract.json vault.name): 1 to 128 of A-Za-z0-9_.-, starting with
    A-Za-z0-9, so that it is always one URL path segment and never the batch route (`_batch`)."""
    return (
        isinstance(name, str)
        and C.VAULT_NAME_MIN <= len(name) <= C.VAULT_NAME_MAX
        and name[0] in C.VAULT_NAME_FIRST
        and _all_in(name[1:], C.VAULT_NAME_CHARS)
    )
