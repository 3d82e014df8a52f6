"""The `hexr` command.

    hexr build SOURCE.py [--tenant TENANT] [--trust-domain hexr.local] [--out .hexr] [--uid-base 61000] [--json]
    hexr run --role ROLE [--contexts .hexr/process-contexts] [--jwt-svid-file PATH [--audience AUD]...] -- COMMAND...
    hexr usage [--agent NAME] [--json] [--sidecar-url URL]

Exit status: 0 done; 2 bad input (the source, the options, a context), nothing written or run;
1 anything else (not root, no SVID, a file that cannot be written); 127 COMMAND not found.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import build as B
from . import launch as L
from .errors import HexrError


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hexr build", description="Discovers the agent's process roles in SOURCE (without running it) and writes one process context per role.")
    p.add_argument("source", metavar="SOURCE.py")
    p.add_argument("--tenant", help="the tenant (required unless @hexr_agent names one; must match it if both do)")
    p.add_argument("--trust-domain", default=B.DEFAULT_TRUST_DOMAIN, help="SPIRE trust domain (default %(default)s)")
    p.add_argument("--out", default=B.DEFAULT_OUT, help="output directory (default %(default)s): contexts go to OUT/process-contexts/")
    p.add_argument("--uid-base", type=int, default=B.DEFAULT_UID_BASE, help="first uid for new roles (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the discovery as JSON instead of the tree")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hexr run", usage="hexr run --role ROLE [options] -- COMMAND...",
                                description="Runs COMMAND as the role's uid, so that SPIRE attests it as that role.")
    p.add_argument("--role", required=True)
    p.add_argument("--contexts", default=L.DEFAULT_CONTEXTS, help="the process contexts (default %(default)s)")
    p.add_argument("--jwt-svid-file", metavar="PATH", help="keep the role's JWT-SVID fresh in PATH (from SPIFFE_ENDPOINT_SOCKET)")
    p.add_argument("--audience", action="append", default=[], help="JWT-SVID audience, repeatable (default %s)" % L.DEFAULT_AUDIENCE)
    p.add_argument("--jwt-timeout", type=float, default=L.STARTUP_TIMEOUT, help="seconds to wait for the first JWT-SVID (default %(default)s)")
    return p


def build(argv: List[str]) -> int:
    args = _build_parser().parse_args(argv)
    try:
        discovery = B.discover(args.source)
        plan = B.plan(discovery, args.tenant, args.trust_domain, args.out, args.uid_base)
    except B.BuildError as error:
        sys.stderr.write(str(error) + "\n")
        return 2
    try:
        B.write(plan)
    except OSError as error:
        sys.stderr.write("hexr build: cannot write %s (%s)\n" % (plan.directory, error.strerror or type(error).__name__))
        return 1
    if args.json:
        sys.stdout.write(json.dumps(B.as_json(plan), indent=2) + "\n")
    else:
        sys.stdout.write(B.render(plan, args.out))
    return 0


def run(argv: List[str]) -> int:
    options, command = L.split_command(argv)
    parser = _run_parser()
    args = parser.parse_args(options)
    if args.audience and not args.jwt_svid_file:
        parser.error("--audience needs --jwt-svid-file")
    try:
        L.launch(args.role, command, args.contexts, args.jwt_svid_file, args.audience, args.jwt_timeout)
    except L.LaunchError as error:
        sys.stderr.write("hexr run: %s\n" % error)
        return error.code
    return 0  # not reached: launch() execs or raises


def _usage_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hexr usage", description="Prints the sidecar's LLM usage and cost as a tree per agent, role by role "
                                "(GET /v1/llm/usage with this process's SPIFFE identity: an admin identity sees every identity's, any other its own).")
    p.add_argument("--agent", metavar="NAME", help="only this agent's identities (the agent segment of the SPIFFE ID)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} as the sidecar answers it, instead of the tree')
    p.add_argument("--sidecar-url", help="default HEXR_SIDECAR_URL, else http://127.0.0.1:15080")
    return p


def usage(argv: List[str]) -> int:
    from . import llm
    from .contract import parse_agent_spiffe_id

    args = _usage_parser().parse_args(argv)
    try:
        rows = llm.usage(sidecar_url=args.sidecar_url)
    except HexrError as error:
        sys.stderr.write("hexr usage: %s\n" % error)
        return 1
    if args.agent is not None:
        rows = [row for row in rows if getattr(parse_agent_spiffe_id(row.spiffe_id), "agent", None) == args.agent]
    if args.json:
        sys.stdout.write(json.dumps({"rows": [row.to_json() for row in rows]}, indent=2) + "\n")
    elif rows:
        sys.stdout.write(llm.cost_tree(rows))
    else:
        sys.stdout.write("No LLM usage%s.\n" % (" for %s" % args.agent if args.agent else ""))
    return 0


COMMANDS = {"build": build, "run": run, "usage": usage}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            sys.stdout.write(__doc__.split("\n\n")[1] + "\n")
            return 0
        sys.stderr.write("usage: hexr {build,run,usage} ...\n%s\n" % __doc__.split("\n\n")[1])
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
