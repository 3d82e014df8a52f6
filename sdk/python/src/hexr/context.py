"""The agent context: @hexr_agent and HexrContext.

The context lives in a contextvars.ContextVar, so it follows the code it was set for: a thread or
an asyncio task sees the context of whoever started it (asyncio copies the context into every
task), and two agents in one process (two threads, two tasks) each see their own.

Entering an agent writes its process-context marker file (the seeds' "runtime marker file"),
{HEXR_CONTEXT_DIR or /tmp/hexr-context}/{agent}-{role}.json:

    {"agent_name": "content-crew", "process_role": "researcher", "tenant": "acme-corp",
     "framework": "crewai", "pid": 42, "resources": ["aws_s3", "gcp_bigquery"]}

It holds no secret. It is written atomically (a temporary file, then rename), mode 0644 so that
the PID mapper can read it; failing to write it is logged, not fatal.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple, TypeVar, Union

from ._files import write_atomically
from .contract import is_path_segment
from .identity import JwtSource, source_for_file

log = logging.getLogger("hexr")

DEFAULT_CONTEXT_DIR = "/tmp/hexr-context"
DEFAULT_ROLE = "main"

F = TypeVar("F", bound=Callable[..., Any])

#: What an agent declares it uses: services for every role, or per role ("*" for the others).
Resources = Union[Iterable[str], Mapping[str, Iterable[str]], None]


@dataclass(frozen=True)
class AgentContext:
    agent_name: str
    tenant: str
    process_role: str
    framework: Optional[str]
    #: None: not restricted locally (the sidecar's allow-list and OPA decide); else the services
    #: (optionally with a ":qualifier" such as "aws_s3:read") this agent may ask for.
    resources: Optional[Tuple[str, ...]]
    #: where this agent's JWT-SVID comes from; None: the process's (environment)
    identity: Optional[JwtSource] = None

    def allows(self, service: str) -> bool:
        if self.resources is None:
            return True
        return any(entry.split(":", 1)[0] == service for entry in self.resources)

    def marker(self) -> dict:
        return {
            "agent_name": self.agent_name,
            "process_role": self.process_role,
            "tenant": self.tenant,
            "framework": self.framework,
            "pid": os.getpid(),
            "resources": list(self.resources) if self.resources is not None else None,
        }


_current: "contextvars.ContextVar[Optional[AgentContext]]" = contextvars.ContextVar("hexr_agent_context", default=None)


def current_agent() -> Optional[AgentContext]:
    """The agent context of the running code, if any."""
    return _current.get()


def context_dir() -> str:
    return os.environ.get("HEXR_CONTEXT_DIR") or DEFAULT_CONTEXT_DIR


def marker_path(agent_name: str, process_role: str) -> str:
    return os.path.join(context_dir(), "%s-%s.json" % (agent_name, process_role))


def write_marker(context: AgentContext) -> Optional[str]:
    """Writes the context's marker file; returns its path, or None if it could not be written."""
    path = marker_path(context.agent_name, context.process_role)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        write_atomically(path, json.dumps(context.marker()).encode("utf-8"), 0o644)
        return path
    except OSError as error:
        log.warning("hexr: could not write the process-context marker %s (%s)", path, type(error).__name__)
        return None


def _resources(resources: Resources, role: str) -> Optional[Tuple[str, ...]]:
    if resources is None:
        return None
    if isinstance(resources, Mapping):
        # Per-role resources (what `hexr build` registers for each role): this role's list, else
        # the "*" list, else none at all.
        resources = resources.get(role, resources.get("*", ()))
    if isinstance(resources, str):
        raise TypeError("resources must be a list of services, not a string")
    out = tuple(resources)
    for entry in out:
        if not isinstance(entry, str):
            raise TypeError("resources must be a list of services")
    return out


def make_context(
    name: str,
    tenant: str,
    framework: Optional[str] = None,
    resources: Resources = None,
    role: Optional[str] = None,
    identity: Union[JwtSource, str, "os.PathLike[str]", None] = None,
) -> AgentContext:
    process_role = role or os.environ.get("HEXR_PROCESS_ROLE") or DEFAULT_ROLE
    for what, value in (("name", name), ("tenant", tenant), ("role", process_role)):
        if not is_path_segment(value):
            raise ValueError("hexr_agent %s must be 1 to 128 characters of A-Za-z0-9._- (not '.' or '..')" % what)
    if identity is not None and not isinstance(identity, JwtSource):
        identity = source_for_file(os.fspath(identity))
    return AgentContext(name, tenant, process_role, framework, _resources(resources, process_role), identity)


def hexr_agent(
    name: str,
    tenant: str,
    framework: Optional[str] = None,
    resources: Resources = None,
    *,
    role: Optional[str] = None,
    identity: Union[JwtSource, str, "os.PathLike[str]", None] = None,
) -> Callable[[F], F]:
    """Marks a function (sync or async) as an agent's entry point.

    While it runs, the agent context is set (for hexr_tool(), spans, the resources check) and its
    marker file is written. `role` defaults to HEXR_PROCESS_ROLE, else "main". `resources` is a
    list for every role, or a dict of lists per role ("*" for the roles it does not name).
    `identity` (a JwtSource or a JWT-SVID file path) overrides the process's identity for this agent.
    """
    context = make_context(name, tenant, framework, resources, role, identity)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = _current.set(context)
                try:
                    write_marker(context)
                    return await fn(*args, **kwargs)
                finally:
                    _current.reset(token)

            async_wrapper.hexr_context = context  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(context)
            try:
                write_marker(context)
                return fn(*args, **kwargs)
            finally:
                _current.reset(token)

        wrapper.hexr_context = context  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class HexrContext:
    """The seeds' HexrContext: set the agent context for the rest of the current context."""

    @staticmethod
    def set_agent_context(
        agent_name: str,
        tenant: str,
        framework: Optional[str] = None,
        resources: Resources = None,
        process_role: Optional[str] = None,
        identity: Union[JwtSource, str, None] = None,
    ) -> AgentContext:
        context = make_context(agent_name, tenant, framework, resources, process_role, identity)
        _current.set(context)
        write_marker(context)
        return context

    @staticmethod
    def get() -> Optional[AgentContext]:
        return _current.get()

    @staticmethod
    def clear() -> None:
        _current.set(None)
