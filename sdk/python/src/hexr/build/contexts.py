"""Process-context files: `{out}/process-contexts/{role}.json`, one per role of the agent.

    {"agent_name": "content-crew", "tenant": "acme-corp", "process_role": "researcher",
     "framework": "crewai", "trust_domain": "hexr.local",
     "spiffe_id": "spiffe://hexr.local/agent/acme-corp/content-crew/researcher",
     "resources": ["gcp_bigquery:read"], "unix_uid": 61001, "source": "content_crew.py"}

They are what a registrar turns into SPIRE entries (one per role, selector `unix:uid:{unix_uid}`)
and what `hexr run --role` starts a role's process from. `unix_uid` is how the kernel (and so
SPIRE's unix workload attestor, through SO_PEERCRED) tells the roles' processes apart, so:

- every role has its own uid; new roles get the lowest free uid from `uid_base` on, in the order
  they were discovered;
- a role keeps the uid its existing file has (same SPIFFE ID), so rebuilding never moves a
  running role to another uid, whatever `uid_base` says now;
- a uid still in any file of the directory is never handed to a new role in the same build, not
  even one of a role being removed: its SPIRE entry may still exist until the registrar sees it gone.

Files of roles no longer in the source are removed (the registrar deletes their entries). A
directory holds one agent: files of another agent there are an error, not something to delete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .._files import write_atomically
from .. import _contract as C
from ..contract import is_path_segment, parse_agent_spiffe_id
from .discovery import SEGMENT_RULE, BuildError, Discovery, framework_title

DEFAULT_OUT = ".hexr"
CONTEXTS_DIR = "process-contexts"
DEFAULT_TRUST_DOMAIN = "hexr.local"
DEFAULT_UID_BASE = 61000
MAX_UID = 2**31 - 2  # below 2^31 - 1 (and (uid_t)-1): every system takes these
TMP_PREFIX = ".hexr-tmp-"
FIELDS = ("agent_name", "tenant", "process_role", "framework", "trust_domain", "spiffe_id", "resources", "unix_uid", "source")


@dataclass
class Plan:
    discovery: Discovery
    directory: str
    contexts: List[dict]
    kinds: Dict[str, str]  # role → how it was declared, for the printed tree
    removed: List[str] = field(default_factory=list)  # file names


def contexts_dir(out: str) -> str:
    return os.path.join(out, CONTEXTS_DIR)


def spiffe_id(trust_domain: str, tenant: str, agent: str, role: str) -> str:
    return "spiffe://%s/agent/%s/%s/%s" % (trust_domain, tenant, agent, role)


def is_trust_domain(value: str) -> bool:
    # The contract checks a trust domain only inside a SPIFFE ID: ask it about one with
    # segments known to be good.
    return parse_agent_spiffe_id(spiffe_id(value, "t", "a", "r")) is not None


def read_existing(directory: str, path: str) -> Dict[str, dict]:
    """file name → context, of the context files already in `directory`."""
    found: Dict[str, dict] = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return found
    except OSError as error:
        raise BuildError(path, [(None, "cannot read %s (%s)" % (directory, error.strerror or type(error).__name__))]) from None
    for name in names:
        if not name.endswith(".json") or name.startswith(TMP_PREFIX):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                context = json.load(handle)
        except (OSError, ValueError):
            context = None
        if not isinstance(context, dict) or not isinstance(context.get("spiffe_id"), str):
            raise BuildError(path, [(None, "%s is not a process context: remove it, or build into another --out" % os.path.join(directory, name))])
        found[name] = context
    return found


def _usable_uid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_UID


def plan(discovery: Discovery, tenant: Optional[str], trust_domain: str = DEFAULT_TRUST_DOMAIN,
         out: str = DEFAULT_OUT, uid_base: int = DEFAULT_UID_BASE) -> Plan:
    """The contexts to write and the files to remove; BuildError (nothing written) if it cannot be."""
    path = discovery.source
    problems = []
    if discovery.tenant and tenant and discovery.tenant != tenant:
        problems.append((discovery.line, "tenant mismatch: @hexr_agent says tenant=%r but --tenant is %r" % (discovery.tenant, tenant)))
    tenant = tenant or discovery.tenant
    if not tenant:
        problems.append((discovery.line, "no tenant: @hexr_agent names none, so pass --tenant"))
    elif not is_path_segment(tenant):
        problems.append((None, "tenant %r is not valid: %s" % (tenant, SEGMENT_RULE)))
    if not is_trust_domain(trust_domain):
        problems.append((None, "trust domain %r is not valid: 1 to 255 characters of a-z0-9._-" % trust_domain))
    if not 0 < uid_base <= MAX_UID:
        problems.append((None, "--uid-base must be between 1 and %d" % MAX_UID))
    if problems:
        raise BuildError(path, problems)

    ids = [spiffe_id(trust_domain, tenant, discovery.agent_name, r.name) for r in discovery.roles]
    for role, sid in zip(discovery.roles, ids):
        if parse_agent_spiffe_id(sid) is None:  # segments and trust domain are good: it is the length
            problems.append((role.line, "the SPIFFE ID %s is longer than the contract's %d bytes" % (sid, C.SPIFFE_ID_MAX)))
    if problems:
        raise BuildError(path, problems)

    directory = contexts_dir(out)
    existing = read_existing(directory, path)
    for name, context in existing.items():
        if (context.get("agent_name"), context.get("tenant")) != (discovery.agent_name, tenant):
            raise BuildError(path, [(None, "%s belongs to agent %r of tenant %r: one agent per output directory, use another --out"
                                     % (os.path.join(directory, name), context.get("agent_name"), context.get("tenant")))])

    kept = {c["spiffe_id"]: c.get("unix_uid") for c in existing.values()}
    taken = {c.get("unix_uid") for c in existing.values()}
    assigned: Dict[str, int] = {}
    for sid in ids:
        uid = kept.get(sid)
        if _usable_uid(uid) and uid not in assigned.values():
            assigned[sid] = uid  # type: ignore[assignment]
    next_uid = uid_base
    for sid in ids:
        if sid in assigned:
            continue
        while next_uid in taken or next_uid in assigned.values():
            next_uid += 1
        if next_uid > MAX_UID:
            raise BuildError(path, [(None, "no free uid left above --uid-base %d" % uid_base)])
        assigned[sid] = next_uid

    source = os.path.basename(path)
    contexts = []
    for role, sid in zip(discovery.roles, ids):
        contexts.append({
            "agent_name": discovery.agent_name,
            "tenant": tenant,
            "process_role": role.name,
            "framework": discovery.framework,
            "trust_domain": trust_domain,
            "spiffe_id": sid,
            "resources": list(role.resources) if role.resources is not None else None,
            "unix_uid": assigned[sid],
            "source": source,
        })
    wanted = {"%s.json" % r.name for r in discovery.roles}
    removed = [name for name in existing if name not in wanted]
    kinds = {r.name: ('%s "%s"' % (r.kind, r.title) if r.title else r.kind) for r in discovery.roles}
    return Plan(discovery, directory, contexts, kinds, removed)


def write_json_atomically(path: str, value: dict) -> None:
    # The registrar and every role's uid read it; nothing in it is secret.
    write_atomically(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"), 0o644, prefix=TMP_PREFIX)


def write(plan: Plan) -> None:
    os.makedirs(plan.directory, mode=0o755, exist_ok=True)
    for context in plan.contexts:
        write_json_atomically(os.path.join(plan.directory, "%s.json" % context["process_role"]), context)
    for name in plan.removed:
        try:
            os.unlink(os.path.join(plan.directory, name))
        except FileNotFoundError:
            pass


def _tree(items: List[str], indent: str = "    ") -> List[str]:
    return ["%s%s %s" % (indent, "└──" if i == len(items) - 1 else "├──", item) for i, item in enumerate(items)]


def render(plan: Plan, out_display: str) -> str:
    """The seeds' tree: what was discovered, what was generated, what was removed."""
    d = plan.discovery
    title = framework_title(d.framework)
    lines = ["Discovered agents:", "  %s%s" % (d.agent_name, " (%s framework)" % title if title else "")]
    lines += _tree(["%s (%s)" % (c["process_role"], plan.kinds[c["process_role"]]) for c in plan.contexts])
    folder = "  %s/" % os.path.join(out_display, CONTEXTS_DIR)
    lines += ["", "Generated:", folder]
    lines += _tree(["%s.json" % c["process_role"] for c in plan.contexts])
    if plan.removed:
        lines += ["", "Removed:", folder]
        lines += _tree(plan.removed)
    return "\n".join(lines) + "\n"


def as_json(plan: Plan) -> dict:
    """The discovery for tooling (`hexr build --json`)."""
    d = plan.discovery
    first = plan.contexts[0]
    return {
        "agent_name": d.agent_name,
        "tenant": first["tenant"],
        "trust_domain": first["trust_domain"],
        "framework": d.framework,
        "source": d.source,
        "contexts_dir": plan.directory,
        "roles": [dict(context, declared_by=plan.discovery.roles[i].kind, title=plan.discovery.roles[i].title,
                       line=plan.discovery.roles[i].line, file="%s.json" % context["process_role"])
                  for i, context in enumerate(plan.contexts)],
        "removed": list(plan.removed),
    }
