"""Hexr SDK for Python: cloud clients from the agent process's SPIFFE identity.

    from hexr import hexr_agent, hexr_tool, CredentialError, AuthenticationError

    @hexr_agent(name="data-pipeline", tenant="acme-corp", resources=["aws_s3"])
    def process():
        s3 = hexr_tool("aws_s3")
        s3.list_buckets()

Secrets scoped by the same identity: hexr.vault (VaultClient, secrets_batch).
LLM calls with no key in the agent: hexr_llm(), and hexr.llm (provider clients, usage, cost_tree).
"""

from ._version import __version__
from .context import AgentContext, HexrContext, current_agent, hexr_agent
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    HexrError,
    MissingDependencyError,
    SecretNotFoundError,
)
from .identity import FileJwtSource, JwtSource, JwtSvid, WorkloadApiJwtSource
from .llm import BudgetExceededError, ProviderError, hexr_llm
from .sidecar import Credential, l1_cache
from .tool import get_credentials, hexr_tool
from .vault import VaultClient, secrets_batch


def clear_cache() -> None:
    """Empties the in-process L1."""
    l1_cache().clear()


__all__ = [
    "__version__",
    "hexr_agent",
    "hexr_tool",
    "hexr_llm",
    "get_credentials",
    "clear_cache",
    "HexrContext",
    "AgentContext",
    "current_agent",
    "HexrError",
    "AuthenticationError",
    "CredentialError",
    "BadRequestError",
    "MissingDependencyError",
    "AccessDeniedError",
    "SecretNotFoundError",
    "ProviderError",
    "BudgetExceededError",
    "VaultClient",
    "secrets_batch",
    "Credential",
    "JwtSource",
    "JwtSvid",
    "FileJwtSource",
    "WorkloadApiJwtSource",
]
