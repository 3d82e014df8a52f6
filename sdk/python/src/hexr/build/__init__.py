"""`hexr build`: the agent's process roles, found in its source without running it
(discovery), and the process-context files a registrar and `hexr run` use (contexts)."""

from .contexts import DEFAULT_OUT, DEFAULT_TRUST_DOMAIN, DEFAULT_UID_BASE, Plan, as_json, plan, render, write
from .discovery import BuildError, Discovery, Role, discover, slug

__all__ = [
    "BuildError",
    "Discovery",
    "Role",
    "Plan",
    "discover",
    "plan",
    "write",
    "render",
    "as_json",
    "slug",
    "DEFAULT_OUT",
    "DEFAULT_TRUST_DOMAIN",
    "DEFAULT_UID_BASE",
]
