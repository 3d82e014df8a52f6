"""`hexr run --role ROLE -- COMMAND...`: starts one role's process as the role's own uid.

SPIRE's unix workload attestor knows a Workload API caller by its uid (SO_PEERCRED), so each role
of an agent runs as the uid `hexr build` gave it (`unix_uid` in its process context), and the
registrar's entry for that role selects `unix:uid:{uid}`. The launcher, as root:

1. reads `{contexts}/{role}.json`;
2. with `--jwt-svid-file PATH`, creates PATH's directory if missing (owned by the uid, 0700);
3. puts HEXR_PROCESS_ROLE, HEXR_AGENT_NAME and HEXR_TENANT in the environment (the rest of the
   environment, SPIFFE_ENDPOINT_SOCKET included, is passed on);
4. drops privileges for good (no supplementary groups, gid = uid = the role's uid) and checks
   that root cannot be regained;
5. with `--jwt-svid-file`, forks the keeper (below) and waits for its first token;
6. execs COMMAND.

The keeper: stock cloud SDKs read a JWT-SVID from a file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE),
so a child process fetches the role's JWT-SVID from the SPIFFE Workload API, writes it to PATH
atomically (mode 0600), refreshes it at half its remaining lifetime, retries with backoff on
failure (the file keeps its last token meanwhile: it is never deleted), and exits when the
command does. It runs as the role's uid, so it is attested as the role, and can only ever get the
role's own SVID. It never prints a token.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import sys
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from ._files import write_atomically
from .contract import is_path_segment, parse_agent_spiffe_id
from .errors import HexrError, scrub
from .identity import DEFAULT_AUDIENCE, JwtSvid, WorkloadApiJwtSource, parse_jwt_svid

DEFAULT_CONTEXTS = os.path.join(".hexr", "process-contexts")
STARTUP_TIMEOUT = 30.0
MAX_UID = 2**31 - 2
CAP_SETGID, CAP_SETUID = 6, 7
PR_SET_PDEATHSIG = 1
#: A refresh is never sooner than this after the last one, however short-lived the SVID.
MIN_REFRESH_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


class LaunchError(Exception):
    """What `hexr run` prints before giving up; `code` is its exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---- the context ------------------------------------------------------------------------------------


def load_context(contexts: str, role: str) -> dict:
    """`{contexts}/{role}.json`, checked: it decides which uid, and so which identity, a process gets."""
    if not is_path_segment(role):
        raise LaunchError("role %r is not valid: 1 to 128 characters of A-Za-z0-9._- (not '.' or '..')" % role, 2)
    path = os.path.join(contexts, "%s.json" % role)
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            context = json.load(handle)
    except FileNotFoundError:
        try:
            known = sorted(n[:-5] for n in os.listdir(contexts) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            known = []
        have = ("roles there: %s" % ", ".join(known)) if known else "run hexr build first"
        raise LaunchError("no process context for role %r: %s does not exist (%s)" % (role, path, have), 2) from None
    except (OSError, ValueError) as error:
        raise LaunchError("cannot read the process context %s (%s)" % (path, type(error).__name__), 2) from None
    if mode & 0o022:
        # Whoever can write the context picks the uid this root process becomes.
        raise LaunchError("%s is writable by group or others: refusing it (chmod 644)" % path, 2)
    if not isinstance(context, dict):
        raise LaunchError("%s is not a process context" % path, 2)
    uid = context.get("unix_uid")
    identity = parse_agent_spiffe_id(context.get("spiffe_id"))
    if context.get("process_role") != role or identity is None or (identity.tenant, identity.agent, identity.role) != (
        context.get("tenant"), context.get("agent_name"), role
    ):
        raise LaunchError("%s is not the process context of role %r (its spiffe_id, tenant, agent_name and process_role disagree)" % (path, role), 2)
    if not isinstance(uid, int) or isinstance(uid, bool) or not 0 < uid <= MAX_UID:
        raise LaunchError("%s has no usable unix_uid (a uid from 1 to %d; never 0)" % (path, MAX_UID), 2)
    return context


def child_environment(context: dict, base: Mapping[str, str], token_file: Optional[str] = None) -> Dict[str, str]:
    env = dict(base)
    env["HEXR_PROCESS_ROLE"] = context["process_role"]
    env["HEXR_AGENT_NAME"] = context["agent_name"]
    env["HEXR_TENANT"] = context["tenant"]
    if token_file:
        # Where the Hexr SDK and the stock AWS SDKs look for the JWT-SVID, unless told otherwise.
        env.setdefault("HEXR_JWT_SVID_FILE", token_file)
        env.setdefault("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file)
    return env


# ---- privileges -------------------------------------------------------------------------------------


def effective_capabilities() -> Optional[int]:
    """CapEff of this process (Linux), else None."""
    try:
        with open("/proc/self/status", "rb") as handle:  # bytes: no codec to import after dropping privileges
            for line in handle:
                if line.startswith(b"CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def can_change_ids() -> bool:
    if os.geteuid() == 0:
        return True
    caps = effective_capabilities() or 0
    return bool(caps & (1 << CAP_SETUID)) and bool(caps & (1 << CAP_SETGID))


def prepare_token_dir(path: str, uid: int) -> None:
    """PATH's directory, created for the role (owned by its uid, 0700) if missing."""
    directory = os.path.dirname(path)
    if os.path.isdir(directory):
        return
    os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
    os.mkdir(directory, 0o700)
    os.chown(directory, uid, uid)
    os.chmod(directory, 0o700)  # whatever the umask said


def drop_privileges(uid: int) -> None:
    """No supplementary groups, gid = uid = `uid` (real, effective, saved), checked."""
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    except OSError as error:
        raise LaunchError("cannot switch to uid %d (%s)" % (uid, error.strerror or type(error).__name__)) from None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise LaunchError("switching to uid %d did not take (uids %r, gids %r, groups %r)" % (uid, os.getresuid(), os.getresgid(), os.getgroups()))
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise LaunchError("uid %d could become root again: refusing to run" % uid)
    if effective_capabilities():
        raise LaunchError("uid %d still holds capabilities: refusing to run" % uid)


# ---- the JWT-SVID keeper ----------------------------------------------------------------------------


def write_token(path: str, token: str) -> None:
    """The token in `path`, mode 0600, atomically."""
    write_atomically(path, token.encode("ascii"), 0o600, prefix=".hexr-jwt-")


def refresh_delay(expires_at: Optional[float], now: float) -> float:
    """Half the remaining lifetime."""
    remaining = (expires_at - now) if expires_at is not None else 0.0
    return max(MIN_REFRESH_SECONDS, remaining / 2.0)


def backoff(failures: int) -> float:
    return min(MAX_BACKOFF_SECONDS, float(2 ** min(failures - 1, 16)))


def describe(error: BaseException) -> str:
    """What went wrong, without a token: the SDK's own message, or the error's type and gRPC status."""
    if isinstance(error, HexrError):
        return error.message
    if isinstance(error, OSError):
        return "%s: %s" % (type(error).__name__, error.strerror or "")
    code = getattr(error.__cause__, "code", None)
    status = ""
    if callable(code):
        try:
            status = " (%s)" % code().name
        except Exception:
            status = ""
    return scrub("%s%s" % (type(error).__name__, status))


def keep_fresh(
    fetch: Callable[[], JwtSvid],
    path: str,
    spiffe_id: str,
    wait: Callable[[float], bool],
    report: Callable[[str, str], None],
    now: Callable[[], float] = time.time,
) -> None:
    """Fetch, write, wait, again, until `wait` says stop. report("ok" | "fetch" | "write", detail)."""
    failures = 0
    while True:
        try:
            svid = fetch()
            if svid.spiffe_id != spiffe_id:
                raise HexrError("the Workload API gave an SVID for %s, not %s" % (svid.spiffe_id, spiffe_id))
        except Exception as error:
            failures += 1
            report("fetch", describe(error))
            delay = backoff(failures)
        else:
            try:
                write_token(path, svid.token)
            except OSError as error:
                failures += 1
                report("write", describe(error))
                delay = backoff(failures)
            else:
                failures = 0
                report("ok", "")
                delay = refresh_delay(svid.expires_at, now())
        if not wait(delay):
            return


def workload_api_fetcher(socket: str, audiences: Sequence[str], spiffe_id: str) -> Callable[[], Callable[[], JwtSvid]]:
    """Called before privileges are dropped (py-spiffe and gRPC are imported now: the role's uid
    may not be able to read the Python installation); returns what makes, in the keeper, the
    fetch function: a fresh JWT-SVID of `spiffe_id` for `audiences` on every call, through
    identity.py's Workload API client (its setup and its errors), asking for that SPIFFE ID only.
    The gRPC channel itself is made in the keeper: gRPC does not survive a fork."""
    try:
        import grpc  # noqa: F401
        from spiffe import SpiffeId, WorkloadApiClient  # noqa: F401
        from spiffe.errors import PySpiffeError  # noqa: F401
    except ImportError:
        raise LaunchError("--jwt-svid-file needs the spiffe package: pip install 'hexr[spiffe]'", 2) from None
    subject = SpiffeId(spiffe_id)

    def make_fetch() -> Callable[[], JwtSvid]:
        source = WorkloadApiJwtSource(socket, audiences[0])

        def fetch() -> JwtSvid:
            client = source._workload_client()
            fetched = client.fetch_jwt_svid(audience=set(audiences), subject=subject)
            return parse_jwt_svid(fetched.token, source.description)

        return fetch

    return make_fetch


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: polling getppid() still ends the keeper
        pass


def _wait_while_parent(parent: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while os.getppid() == parent:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 1.0))
    return False


def _keeper(make_fetch: Callable[[], Callable[[], JwtSvid]], path: str, spiffe_id: str, pipe: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's; the keeper ends with it
    _die_with_parent()
    if os.getppid() != parent:
        return
    open_pipe = [pipe]

    def report(kind: str, detail: str) -> None:
        if open_pipe:  # starting: the launcher waits for "ok" and shows the failures
            os.write(open_pipe[0], ("%s %s\n" % (kind, detail)).encode("utf-8", "replace"))
            if kind == "ok":
                os.close(open_pipe.pop())
        elif kind != "ok":
            sys.stderr.write("hexr run: could not refresh the JWT-SVID in %s (%s); the file keeps the last one, retrying\n" % (path, detail))
            sys.stderr.flush()

    keep_fresh(make_fetch(), path, spiffe_id, lambda seconds: _wait_while_parent(parent, seconds), report)


def start_keeper(make_fetch: Callable[[], Callable[[], JwtSvid]], path: str, context: dict, socket: str, timeout: float) -> int:
    """Forks the keeper; returns its pid once it has written the first token."""
    parent = os.getpid()
    read_end, write_end = os.pipe()  # not inherited by the command: close-on-exec
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            _keeper(make_fetch, path, context["spiffe_id"], write_end, parent)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        _await_first_token(read_end, path, context, socket, timeout)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        raise
    finally:
        os.close(read_end)
    return pid


def _await_first_token(read_end: int, path: str, context: dict, socket: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    buffered, last = b"", "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LaunchError(
                "no SVID for uid %d (%s) from the Workload API at %s within %gs: is the role registered (hexr-registrar)? (last error: %s)"
                % (context["unix_uid"], context["spiffe_id"], socket, timeout, last)
            )
        if not select.select([read_end], [], [], left)[0]:
            continue
        chunk = os.read(read_end, 4096)
        if not chunk:
            raise LaunchError("the JWT-SVID keeper ended before writing %s (last error: %s)" % (path, last))
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            kind, _, detail = line.decode("utf-8", "replace").partition(" ")
            if kind == "ok":
                return
            if kind == "write":
                raise LaunchError("uid %d cannot write the JWT-SVID to %s (%s)" % (context["unix_uid"], path, detail))
            last = detail


# ---- hexr run ---------------------------------------------------------------------------------------


def launch(
    role: str,
    command: Sequence[str],
    contexts: str = DEFAULT_CONTEXTS,
    jwt_svid_file: Optional[str] = None,
    audiences: Iterable[str] = (),
    timeout: float = STARTUP_TIMEOUT,
    environ: Optional[Mapping[str, str]] = None,
) -> None:
    """Does not return: execs `command` as the role (or raises LaunchError)."""
    if not command:
        raise LaunchError("nothing to run: hexr run --role ROLE -- COMMAND...", 2)
    audiences = list(audiences) or [DEFAULT_AUDIENCE]
    context = load_context(contexts, role)
    uid = context["unix_uid"]
    if not can_change_ids():
        raise LaunchError(
            "hexr run must run as root (or with CAP_SETUID and CAP_SETGID) to start role %r as its uid %d" % (role, uid)
        )
    token_file = os.path.abspath(jwt_svid_file) if jwt_svid_file else None
    env = child_environment(context, os.environ if environ is None else environ, token_file)
    socket = env.get("SPIFFE_ENDPOINT_SOCKET", "")
    if token_file:
        if not socket:
            raise LaunchError("--jwt-svid-file needs SPIFFE_ENDPOINT_SOCKET (the SPIRE agent's Workload API) in the environment", 2)
        make_fetch = workload_api_fetcher(socket, audiences, context["spiffe_id"])
        try:
            prepare_token_dir(token_file, uid)
        except OSError as error:
            raise LaunchError("cannot create %s for uid %d (%s)" % (os.path.dirname(token_file), uid, error.strerror)) from None

    if os.sep not in command[0] and shutil.which(command[0], path=env.get("PATH", os.defpath)) is None:
        # Looked up now: after the drop, a PATH entry the uid cannot search reads as EACCES.
        raise LaunchError("cannot run %s: not found in PATH" % command[0], 127)

    drop_privileges(uid)
    if token_file:
        start_keeper(make_fetch, token_file, context, socket, timeout)
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as error:
        raise LaunchError("cannot run %s: %s" % (command[0], error.strerror or type(error).__name__), 127) from None


def split_command(argv: List[str]) -> tuple:
    """(options, command): everything after the first `--` is the command, untouched."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []
