"""Static discovery of an agent and its process roles from Python source (`hexr build`).

The source is parsed with `ast` and nothing else: it is never imported or executed, so building
needs none of the agent's dependencies and runs none of its code.

What is recognised (a name counts only when imported from the package named, so a local class
called `Agent` is not taken for CrewAI's):

- the agent: a function or class decorated with `@hexr_agent(...)`, `@hexr.hexr_agent(...)` or an
  alias (`from hexr import hexr_agent as agent`). Its arguments are read as `hexr_agent` takes
  them: `name` (required), `tenant`, `framework`, `resources`, `role`. Each must be a literal or a
  module-level constant (a name assigned once at the top of the module, to a literal, another
  constant, or `list(NAME)` / `tuple(NAME)`);
- roles, by where they come from:
  * `role="x"`: the agent runs as that one role, always;
  * otherwise the role is the process's (`role=os.environ.get("HEXR_PROCESS_ROLE", "main")`, or
    no `role=`: the SDK then reads HEXR_PROCESS_ROLE), and the roles it may be are declared by
    `HEXR_ROLES = ("researcher", "writer")` at module level (the complete list when present),
    the multi-agent frameworks below, and the keys of a dict-form `resources={"writer": [...]}`;
    if nothing declares any, the one role is the fallback (`"main"`, or the default given to
    os.environ.get);
- frameworks: CrewAI `Agent(role=...)` (role titles become slugs: "Senior Researcher" →
  "senior-researcher"), LangGraph `create_react_agent(..., name=...)` and
  `StateGraph(...)`'s `.add_node("name", ...)` / `.add_node(function)`, LangChain
  `AgentExecutor(..., name=...)` and `create_agent(..., name=...)`. Any other call into `crewai`,
  `langgraph` or `langchain.agents` names the framework without declaring a role;
- `resources`: a list of services (`"aws_s3"`, `"aws_s3:read"`) for every role, or a dict
  `{role: [...]}` with per-role lists (`"*"`: the list of roles not named), as in
  policy/data.json.

Names and roles are checked with the contract's grammar (hexr.contract), services against its
catalog. Every problem is reported with its line; `discover` raises BuildError with all of them.
"""

from __future__ import annotations

import ast
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import _contract as C
from ..contract import CATALOG, is_path_segment

#: The scopes a grant may carry ("aws_s3:read"): the only one the injector enforces
#: (injector/providers/provider.ts, READ_SCOPE); it denies a grant whose scopes it cannot enforce.
SCOPES = ("read",)
ROLES_DECLARATION = "HEXR_ROLES"
ROLE_VARIABLE = "HEXR_PROCESS_ROLE"
DEFAULT_ROLE = "main"
ANY_ROLE = "*"
SEGMENT_RULE = "1 to 128 characters of A-Za-z0-9._- (not '.' or '..')"

HEXR_AGENT = {"hexr_agent", "hexr.hexr_agent", "hexr.context.hexr_agent"}
CREWAI_AGENT = {"crewai.Agent", "crewai.agent.Agent"}
LANGGRAPH_REACT_AGENT = {"langgraph.prebuilt.create_react_agent", "langgraph.prebuilt.chat_agent_executor.create_react_agent"}
LANGGRAPH_STATE_GRAPH = {"langgraph.graph.StateGraph", "langgraph.graph.state.StateGraph"}
LANGCHAIN_AGENT = {"langchain.agents.AgentExecutor", "langchain.agents.agent.AgentExecutor", "langchain.agents.create_agent"}
#: A call into one of these names the framework (first match wins: the orchestrators before LangChain).
FRAMEWORK_PACKAGES = (("crewai", "crewai."), ("langgraph", "langgraph."), ("langchain", "langchain.agents."))
FRAMEWORK_TITLES = {"crewai": "CrewAI", "langgraph": "LangGraph", "langchain": "LangChain"}


class BuildError(Exception):
    """Bad input: each problem is (line or None, message), about one source path."""

    def __init__(self, path: str, problems: Sequence[Tuple[Optional[int], str]]) -> None:
        super().__init__(path, list(problems))
        self.path = path
        self.problems = list(problems)

    def lines(self) -> List[str]:
        return ["%s:%s: error: %s" % (self.path, line, message) if line else "%s: error: %s" % (self.path, message)
                for line, message in self.problems]

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class EnvRole:
    """The role comes from HEXR_PROCESS_ROLE at run time; `default` when it is unset."""

    default: Optional[str]


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()  # not statically known


@dataclass
class Role:
    name: str
    kind: str  # how it was declared: "Agent role", "LangGraph node", "HEXR_ROLES", ...
    line: int
    framework: Optional[str] = None
    title: Optional[str] = None  # the framework's own name, when the role is its slug
    resources: Optional[Tuple[str, ...]] = None


@dataclass
class Discovery:
    source: str
    agent_name: str
    tenant: Optional[str]
    framework: Optional[str]
    line: int
    roles: List[Role] = field(default_factory=list)


def framework_title(framework: Optional[str]) -> Optional[str]:
    return FRAMEWORK_TITLES.get(framework, framework) if framework else None


def slug(title: str) -> str:
    """A framework's display name as a role: lower case, accents dropped, every run of characters
    the role grammar does not allow (and '.') becoming one '-'."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    out: List[str] = []
    for ch in text:
        keep = ch in C.PATH_SEGMENT_CHARS and ch != "."
        if keep:
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


# ---- reading the module ------------------------------------------------------------------------------


class _Module:
    """A parsed module: its imports (local name → dotted name) and module-level constants."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.imported: Dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = "%s.%s" % (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imported[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.imported[top] = top
        self.constants: Dict[str, Any] = {}
        self.constant_lines: Dict[str, int] = {}
        self._read_constants()

    def _read_constants(self) -> None:
        # A name bound more than once at module level has no one static value: it is left out.
        bound: Dict[str, int] = {}
        for stmt in self.tree.body:
            for name in _bound_names(stmt):
                bound[name] = bound.get(name, 0) + 1
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                targets, value = [t.id for t in stmt.targets], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                targets, value = [stmt.target.id], stmt.value
            else:
                continue
            for name in targets:
                if bound.get(name) == 1:
                    self.constants[name] = self.value(value)
                    self.constant_lines[name] = stmt.lineno

    def dotted(self, node: ast.AST) -> Optional[str]:
        """`a.b.c` with its first name replaced by what it was imported as."""
        if isinstance(node, ast.Name):
            return self.imported.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return None if base is None else "%s.%s" % (base, node.attr)
        return None

    def value(self, node: Optional[ast.AST]) -> Any:
        """The static value of an expression: str, int, float, bool, None, tuple (lists too),
        dict, EnvRole; else UNKNOWN."""
        if node is None:
            return UNKNOWN
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = tuple(self.value(e) for e in node.elts)
            return UNKNOWN if any(i is UNKNOWN for i in items) else items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):  # {**other}
                return UNKNOWN
            keys = [self.value(k) for k in node.keys]
            values = [self.value(v) for v in node.values]
            if any(x is UNKNOWN or isinstance(x, dict) for x in keys) or any(v is UNKNOWN for v in values):
                return UNKNOWN
            return dict(zip(keys, values))
        if isinstance(node, ast.Name):
            return self.constants.get(node.id, UNKNOWN)
        if isinstance(node, ast.Call):
            return self._call_value(node)
        if isinstance(node, ast.Subscript) and self.dotted(node.value) == "os.environ":
            if self.value(node.slice) == ROLE_VARIABLE:
                return EnvRole(None)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2:
            first, second = (self.value(v) for v in node.values)
            if isinstance(first, EnvRole) and first.default is None and isinstance(second, str):
                return EnvRole(second)  # os.environ.get("HEXR_PROCESS_ROLE") or "main"
        return UNKNOWN

    def _call_value(self, node: ast.Call) -> Any:
        func = self.dotted(node.func)
        args = [self.value(a) for a in node.args]
        if node.keywords:
            return UNKNOWN
        if func in ("list", "tuple") and len(args) == 1 and isinstance(args[0], tuple):
            return args[0]
        if func in ("os.environ.get", "os.getenv") and args and args[0] == ROLE_VARIABLE and len(args) <= 2:
            default = args[1] if len(args) == 2 else None
            if default is None or isinstance(default, str):
                return EnvRole(default)
        return UNKNOWN

    def calls(self) -> List[ast.Call]:
        found = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _bound_names(stmt: ast.stmt) -> List[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    targets: List[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        targets = [stmt.target]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    elif isinstance(stmt, (ast.If, ast.Try, ast.While)):
        # Conditionally bound: counted twice, so never a constant.
        names = [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        return names + names
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


# ---- the decorator -----------------------------------------------------------------------------------

HEXR_AGENT_POSITIONAL = ("name", "tenant", "framework", "resources")
HEXR_AGENT_KEYWORDS = set(HEXR_AGENT_POSITIONAL) | {"role", "identity"}


@dataclass
class _Decorator:
    line: int
    args: Dict[str, ast.AST]


def _decorators(module: _Module, problems: List[Tuple[Optional[int], str]]) -> List[_Decorator]:
    found = []
    for node in ast.walk(module.tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for deco in node.decorator_list:
            if module.dotted(deco) in HEXR_AGENT:
                problems.append((deco.lineno, "@hexr_agent must be called: @hexr_agent(name=..., tenant=...)"))
                continue
            if not isinstance(deco, ast.Call) or module.dotted(deco.func) not in HEXR_AGENT:
                continue
            args: Dict[str, ast.AST] = {}
            if len(deco.args) > len(HEXR_AGENT_POSITIONAL) or any(isinstance(a, ast.Starred) for a in deco.args):
                problems.append((deco.lineno, "@hexr_agent takes at most name, tenant, framework, resources positionally"))
            args.update(zip(HEXR_AGENT_POSITIONAL, deco.args))
            for kw in deco.keywords:
                if kw.arg is None:
                    problems.append((deco.lineno, "@hexr_agent(**...) cannot be read statically: pass its arguments by name"))
                elif kw.arg not in HEXR_AGENT_KEYWORDS:
                    problems.append((kw.value.lineno, "@hexr_agent has no argument %r" % kw.arg))
                else:
                    args[kw.arg] = kw.value
            found.append(_Decorator(deco.lineno, args))
    return sorted(found, key=lambda d: d.line)


# ---- framework roles ---------------------------------------------------------------------------------


def _keyword(call: ast.Call, name: str) -> Optional[ast.AST]:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _framework_roles(module: _Module) -> Tuple[List[Role], List[Tuple[int, str]], Optional[str]]:
    """Roles the frameworks' own declarations name; (line, what) of those with no static name;
    the framework called (when none declares a role)."""
    roles: List[Role] = []
    unnamed: List[Tuple[int, str]] = []
    called = set()
    assigned = [(ast.unparse(t), n.value) for n in ast.walk(module.tree) if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call) for t in n.targets]
    graphs = {target for target, call in assigned if module.dotted(call.func) in LANGGRAPH_STATE_GRAPH}
    # add_node(agent) where agent = create_react_agent(..., name="x"): LangGraph names the node "x".
    agent_names = {target: module.value(_keyword(call, "name")) for target, call in assigned
                   if module.dotted(call.func) in LANGGRAPH_REACT_AGENT | LANGCHAIN_AGENT}

    def named(call: ast.Call, node: Optional[ast.AST], kind: str, framework: str, what: str) -> None:
        title = module.value(node) if node is not None else UNKNOWN
        if isinstance(title, str):
            roles.append(Role(slug(title), kind, call.lineno, framework, title))
        else:
            unnamed.append((call.lineno, what))

    for call in module.calls():
        func = module.dotted(call.func) or ""
        if func in CREWAI_AGENT:  # every CrewAI agent has a role (role=, or from its YAML config)
            named(call, _keyword(call, "role"), "Agent role", "crewai", "CrewAI Agent(role=...)")
        elif func in LANGGRAPH_REACT_AGENT | LANGCHAIN_AGENT:
            # name= is optional: an agent without one is the framework's, not a role of its own.
            kind, framework = ("LangGraph agent", "langgraph") if func in LANGGRAPH_REACT_AGENT else ("LangChain agent", "langchain")
            called.add(framework)
            if _keyword(call, "name") is not None:
                named(call, _keyword(call, "name"), kind, framework, "%s(name=...)" % func.rsplit(".", 1)[1])
        elif isinstance(call.func, ast.Attribute) and call.func.attr == "add_node" and (
            ast.unparse(call.func.value) in graphs
            or (isinstance(call.func.value, ast.Call) and module.dotted(call.func.value.func) in LANGGRAPH_STATE_GRAPH)
        ):
            node = _keyword(call, "node") or (call.args[0] if call.args else None)
            if isinstance(node, (ast.Name, ast.Attribute)) and len(call.args) == 1 and module.value(node) is UNKNOWN:
                # add_node(function): LangGraph names the node after the function (or the agent).
                title = agent_names.get(ast.unparse(node))
                if not isinstance(title, str):
                    title = node.id if isinstance(node, ast.Name) else node.attr
                roles.append(Role(slug(title), "LangGraph node", call.lineno, "langgraph", title))
            else:
                named(call, node, "LangGraph node", "langgraph", "add_node(name, ...)")
        else:
            called.update(fw for fw, prefix in FRAMEWORK_PACKAGES if func.startswith(prefix))
    for role in roles:
        if role.title == role.name:
            role.title = None
    return roles, unnamed, next((fw for fw, _ in FRAMEWORK_PACKAGES if fw in called), None)


# ---- putting it together -----------------------------------------------------------------------------


def _check_resources(entries: Any, line: int, problems: List[Tuple[Optional[int], str]]) -> Optional[Tuple[str, ...]]:
    if not isinstance(entries, tuple) or not all(isinstance(e, str) for e in entries):
        problems.append((line, "resources must be a list of service names such as \"aws_s3\" or \"aws_s3:read\""))
        return None
    for entry in entries:
        service, sep, scope = entry.partition(":")
        if service not in CATALOG:
            problems.append((line, "unknown service %r in resources (the catalog: %s)" % (service, ", ".join(CATALOG))))
        elif sep and scope not in SCOPES:
            problems.append((line, "unknown scope %r in %r: the injector enforces only %s" % (scope, entry, ", ".join(repr(s) for s in SCOPES))))
    return entries


def _arg_line(deco: _Decorator, name: str) -> int:
    node = deco.args.get(name)
    return getattr(node, "lineno", deco.line)


def _read_decorator(module: _Module, deco: _Decorator) -> dict:
    """The decorator's arguments as static values (UNKNOWN where they are not)."""
    return {name: module.value(deco.args[name]) if name in deco.args else None for name in HEXR_AGENT_KEYWORDS - {"identity"}}


def discover(path: str, source: Optional[str] = None) -> Discovery:
    """The agent in the Python source at `path` (read from disk unless `source` is given)."""
    display = os.fspath(path)
    if source is None:
        try:
            with open(display, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise BuildError(display, [(None, "no such file")]) from None
        except OSError as error:
            raise BuildError(display, [(None, "cannot read it (%s)" % (error.strerror or type(error).__name__))]) from None
    else:
        data = source.encode("utf-8")
    try:
        tree = ast.parse(data, filename=display)
    except SyntaxError as error:
        raise BuildError(display, [(error.lineno, "syntax error: %s" % error.msg)]) from None
    except ValueError as error:  # null bytes
        raise BuildError(display, [(None, "not Python source (%s)" % error)]) from None

    problems: List[Tuple[Optional[int], str]] = []
    module = _Module(tree)
    decorators = _decorators(module, problems)
    if not decorators:
        if problems:
            raise BuildError(display, problems)
        raise BuildError(display, [(None, "no @hexr_agent(...) found: hexr build needs the agent's entry point decorated with @hexr_agent(name=..., tenant=...)")])

    readings = [(deco, _read_decorator(module, deco)) for deco in decorators]
    deco, args = readings[0]
    others = [(d, a) for d, a in readings[1:] if a != args]
    if others:
        listed = ", ".join("%r (line %d)" % (a["name"] if isinstance(a["name"], str) else "?", d.line) for d, a in readings)
        raise BuildError(display, [(others[0][0].line, "one agent per source file, and these @hexr_agent differ: %s; put each agent in its own file" % listed)])

    name = args["name"]
    if "name" not in deco.args:
        problems.append((deco.line, "@hexr_agent needs name=\"...\""))
    elif not isinstance(name, str):
        problems.append((_arg_line(deco, "name"), "@hexr_agent name must be a string literal (or a module-level string constant)"))
    elif not is_path_segment(name):
        problems.append((_arg_line(deco, "name"), "agent name %r is not valid: %s" % (name, SEGMENT_RULE)))

    tenant = args["tenant"]
    if tenant is UNKNOWN or tenant is None:
        tenant = None  # decided at run time, or not given: --tenant says
    elif not isinstance(tenant, str) or not is_path_segment(tenant):
        problems.append((_arg_line(deco, "tenant"), "tenant %r is not valid: %s" % (tenant, SEGMENT_RULE)))
        tenant = None

    framework = args["framework"]
    if framework is not None and not isinstance(framework, str):
        framework = None  # not static: the framework found in the source, if any

    resources = args["resources"]
    grants: Optional[Dict[str, Tuple[str, ...]]] = None
    shared: Optional[Tuple[str, ...]] = None
    if resources is UNKNOWN:
        problems.append((_arg_line(deco, "resources"), "resources must be a literal list or dict (or a module-level constant) for hexr build to read it"))
    elif isinstance(resources, dict):
        grants = {}
        for role_name, entries in resources.items():
            if not isinstance(role_name, str) or not (role_name == ANY_ROLE or is_path_segment(role_name)):
                problems.append((_arg_line(deco, "resources"), "role %r in resources is not valid: %s" % (role_name, SEGMENT_RULE)))
                continue
            checked = _check_resources(entries, _arg_line(deco, "resources"), problems)
            if checked is not None:
                grants[role_name] = checked
    elif resources is not None:
        shared = _check_resources(resources, _arg_line(deco, "resources"), problems)

    role = args["role"]
    fixed: Optional[str] = None
    fallback = DEFAULT_ROLE
    if isinstance(role, str):
        fixed = role
    elif isinstance(role, EnvRole):
        fallback = role.default if role.default is not None else DEFAULT_ROLE
    elif role is not None:
        problems.append((_arg_line(deco, "role"), "role must be a string literal, or os.environ.get(\"HEXR_PROCESS_ROLE\", ...) for a role per process"))

    declared = _declared_roles(module, problems)
    framework_roles, unnamed, called = _framework_roles(module)
    roles = _choose_roles(deco, fixed, fallback, declared, framework_roles, unnamed, grants, problems)

    for r in roles:
        if not is_path_segment(r.name):
            what = "role %r (from %r)" % (r.name, r.title) if r.title else "role %r" % r.name
            problems.append((r.line, "%s is not valid: %s" % (what, SEGMENT_RULE)))
        r.resources = shared if grants is None else grants.get(r.name, grants.get(ANY_ROLE, ()))
    if problems:
        raise BuildError(display, sorted(problems, key=lambda p: (p[0] or 0)))

    if framework is None:
        framework = next((r.framework for r in roles if r.framework), None) or called
    return Discovery(display, name, tenant, framework, deco.line, roles)


def _declared_roles(module: _Module, problems: list) -> Optional[List[Role]]:
    if ROLES_DECLARATION not in module.constant_lines:
        if any(ROLES_DECLARATION in _bound_names(stmt) for stmt in module.tree.body):
            problems.append((None, "%s must be assigned once, at module level, to a tuple of role names" % ROLES_DECLARATION))
        return None
    line = module.constant_lines[ROLES_DECLARATION]
    value = module.constants[ROLES_DECLARATION]
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) for v in value):
        problems.append((line, "%s must be a non-empty tuple or list of role names (string literals)" % ROLES_DECLARATION))
        return None
    return [Role(v, ROLES_DECLARATION, line) for v in value]


def _no_duplicates(roles: List[Role], where: str, problems: list) -> None:
    first: Dict[str, Role] = {}
    for r in roles:
        seen = first.setdefault(r.name, r)
        if seen is not r:
            title = " (from %r)" % r.title if r.title else ""
            before = " (from %r)" % seen.title if seen.title else ""
            problems.append((r.line, "duplicate role %r%s in %s: already declared on line %d%s" % (r.name, title, where, seen.line, before)))


def _choose_roles(deco, fixed, fallback, declared, framework_roles, unnamed, grants, problems) -> List[Role]:
    if declared is not None:
        _no_duplicates(declared, ROLES_DECLARATION, problems)
    # Two CrewAI Agents with one role are a mistake; a LangGraph agent and the node that runs it
    # naming the same role are one role.
    for kind in dict.fromkeys(r.kind for r in framework_roles):
        _no_duplicates([r for r in framework_roles if r.kind == kind], "the %ss" % kind, problems)
    unique: Dict[str, Role] = {}
    for r in framework_roles:
        unique.setdefault(r.name, r)
    framework_roles = list(unique.values())
    granted = [g for g in (grants or {}) if g != ANY_ROLE]

    if fixed is not None:
        # One process role, always: declarations naming others cannot come true.
        for other in (declared or []):
            if other.name != fixed:
                problems.append((other.line, "%s names %r but @hexr_agent fixes role=%r: use role=os.environ.get(\"HEXR_PROCESS_ROLE\") for a role per process" % (ROLES_DECLARATION, other.name, fixed)))
        for g in granted:
            if g != fixed:
                problems.append((_arg_line(deco, "resources"), "resources grants role %r but @hexr_agent fixes role=%r" % (g, fixed)))
        return [Role(fixed, "role", _arg_line(deco, "role"))]

    by_framework = {r.name: r for r in framework_roles}
    if declared is not None:
        # HEXR_ROLES is the complete list: everything else must be in it.
        names = {r.name for r in declared}
        for r in framework_roles:
            if r.name not in names:
                problems.append((r.line, "role %r (%s) is not in %s" % (r.name, r.kind, ROLES_DECLARATION)))
        for g in granted:
            if g not in names:
                problems.append((_arg_line(deco, "resources"), "resources grants role %r, which is not in %s" % (g, ROLES_DECLARATION)))
        return [by_framework.get(r.name, r) for r in declared]

    for line, what in unnamed:
        problems.append((line, "%s has no literal name, so its role cannot be known before it runs: name it with a literal, or list the roles in %s = (...)" % (what, ROLES_DECLARATION)))
    if framework_roles:
        for g in granted:
            if g not in by_framework:
                problems.append((_arg_line(deco, "resources"), "resources grants role %r, which no agent of the framework declares" % g))
        return list(framework_roles)
    if granted:
        return [Role(g, "resources", _arg_line(deco, "resources")) for g in granted]
    return [Role(fallback, "default role", deco.line)]
