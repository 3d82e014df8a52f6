"""hexr run: a role's process as the role's uid, and the JWT-SVID keeper."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import pytest

from hexr import cli, launch
from hexr.build import discover, plan, write
from hexr.identity import JwtSvid

from conftest import unsigned_jwt

SAMPLES = Path(__file__).parent / "build_samples"
WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="hexr run changes uid: needs root (the suite runs as root in CI)")
# The command runs as the role's uid, which may not read this venv's Python (e.g. under /root):
# a system Python every uid can run.
PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
needs_python = pytest.mark.skipif(PYTHON is None, reason="no system python3 that any uid can run")

REPORT = ("import os, json; print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(), "
          "'egid': os.getegid(), 'groups': os.getgroups(), 'role': os.environ['HEXR_PROCESS_ROLE'], "
          "'agent': os.environ['HEXR_AGENT_NAME'], 'tenant': os.environ['HEXR_TENANT'], "
          "'socket': os.environ.get('SPIFFE_ENDPOINT_SOCKET')}))")


@pytest.fixture
def crew_contexts(tmp_path):
    """content-crew's contexts (researcher 61000, writer 61001, editor 61002) under tmp_path."""
    out = tmp_path / "out"
    write(plan(discover(str(SAMPLES / "content_crew.py")), "acme-corp", out=str(out)))
    return out / "process-contexts"


def hexr_run(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "hexr.cli", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd="/", env=dict(os.environ, **(env or {})))


# ---- the context -----------------------------------------------------------------------------------


def test_load_context(crew_contexts):
    context = launch.load_context(str(crew_contexts), "writer")
    assert (context["unix_uid"], context["spiffe_id"]) == (61001, WRITER)


def test_missing_context_lists_the_roles_there(crew_contexts):
    with pytest.raises(launch.LaunchError) as caught:
        launch.load_context(str(crew_contexts), "publisher")
    assert str(caught.value) == "no process context for role 'publisher': %s/publisher.json does not exist (roles there: editor, researcher, writer)" % crew_contexts
    assert caught.value.code == 2
    with pytest.raises(launch.LaunchError, match=r"does not exist \(run hexr build first\)"):
        launch.load_context(str(crew_contexts / "nowhere"), "writer")


@pytest.mark.parametrize("role", ["..", "a/b", "", "wri ter", "../process-contexts/writer"])
def test_bad_role_names_never_reach_the_file_system(role, crew_contexts):
    with pytest.raises(launch.LaunchError, match="is not valid") as caught:
        launch.load_context(str(crew_contexts), role)
    assert caught.value.code == 2


@pytest.mark.parametrize("change, message", [
    (lambda c: dict(c, unix_uid=0), "has no usable unix_uid"),
    (lambda c: dict(c, unix_uid="61001"), "has no usable unix_uid"),
    (lambda c: dict(c, unix_uid=True), "has no usable unix_uid"),
    (lambda c: dict(c, process_role="editor"), "is not the process context of role 'writer'"),
    (lambda c: dict(c, spiffe_id=WRITER.replace("writer", "editor")), "is not the process context of role 'writer'"),
    (lambda c: dict(c, tenant="globex"), "is not the process context of role 'writer'"),
    (lambda c: [c], "is not a process context"),
])
def test_inconsistent_contexts_are_refused(change, message, crew_contexts):
    path = crew_contexts / "writer.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(launch.LaunchError, match=message):
        launch.load_context(str(crew_contexts), "writer")


def test_a_context_others_can_write_is_refused(crew_contexts):
    path = crew_contexts / "writer.json"
    path.chmod(0o664)
    with pytest.raises(launch.LaunchError, match="writable by group or others: refusing it"):
        launch.load_context(str(crew_contexts), "writer")
    path.write_text("{not json")
    path.chmod(0o644)
    with pytest.raises(launch.LaunchError, match="cannot read the process context .*JSONDecodeError"):
        launch.load_context(str(crew_contexts), "writer")


def test_child_environment():
    context = {"process_role": "writer", "agent_name": "content-crew", "tenant": "acme-corp"}
    base = {"SPIFFE_ENDPOINT_SOCKET": "unix:///run/spire/agent.sock", "HEXR_PROCESS_ROLE": "main", "PATH": "/usr/bin"}
    env = launch.child_environment(context, base)
    assert env == dict(base, HEXR_PROCESS_ROLE="writer", HEXR_AGENT_NAME="content-crew", HEXR_TENANT="acme-corp")
    env = launch.child_environment(context, dict(base, HEXR_JWT_SVID_FILE="/elsewhere"), "/run/hexr/writer/jwt")
    assert (env["HEXR_JWT_SVID_FILE"], env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]) == ("/elsewhere", "/run/hexr/writer/jwt")


# ---- refusals before anything happens ----------------------------------------------------------------


def run_cli(capsys, *args):
    code = cli.main(["run", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_not_root_is_a_clear_error(crew_contexts, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(launch, "effective_capabilities", lambda: 0)
    code, out, err = run_cli(capsys, "--role", "writer", "--contexts", crew_contexts, "--", "true")
    assert (code, out) == (1, "")
    assert err == "hexr run: hexr run must run as root (or with CAP_SETUID and CAP_SETGID) to start role 'writer' as its uid 61001\n"


def test_capabilities_are_enough(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(launch, "effective_capabilities", lambda: (1 << 6) | (1 << 7))
    assert launch.can_change_ids()
    monkeypatch.setattr(launch, "effective_capabilities", lambda: 1 << 7)
    assert not launch.can_change_ids()


@needs_root
def test_not_root_for_real(crew_contexts, shared_dir):
    """The launcher's check as a real non-root process (a forked child that became nobody)."""
    shutil.copy(crew_contexts / "writer.json", shared_dir / "writer.json")  # where nobody can read it
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            launch.launch("writer", ["true"], str(shared_dir))
            message = "launched"
        except launch.LaunchError as error:
            message = "%d %s" % (error.code, error)
        except BaseException as error:
            message = repr(error)
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode()
    assert message == "1 hexr run must run as root (or with CAP_SETUID and CAP_SETGID) to start role 'writer' as its uid 61001"


def test_usage_errors(crew_contexts, capsys, monkeypatch):
    assert run_cli(capsys, "--role", "writer", "--contexts", crew_contexts)[0:2] == (2, "")
    assert "nothing to run" in run_cli(capsys, "--role", "writer", "--contexts", crew_contexts, "--")[2]
    with pytest.raises(SystemExit) as caught:
        cli.main(["run", "--role", "writer", "--audience", "x", "--", "true"])
    assert caught.value.code == 2
    assert "--audience needs --jwt-svid-file" in capsys.readouterr().err
    monkeypatch.delenv("SPIFFE_ENDPOINT_SOCKET", raising=False)
    code, _, err = run_cli(capsys, "--role", "writer", "--contexts", crew_contexts, "--jwt-svid-file", "/tmp/x/jwt", "--", "true")
    assert (code, err) == (2, "hexr run: --jwt-svid-file needs SPIFFE_ENDPOINT_SOCKET (the SPIRE agent's Workload API) in the environment\n")
    assert not os.path.exists("/tmp/x/jwt")


# ---- for real: the role's uid ------------------------------------------------------------------------


@needs_root
@needs_python
def test_the_command_runs_as_the_roles_uid_with_no_groups(crew_contexts):
    done = hexr_run("--role", "writer", "--contexts", crew_contexts, "--", PYTHON, "-c", REPORT,
                    env={"SPIFFE_ENDPOINT_SOCKET": "unix:///run/spire/agent.sock", "HEXR_PROCESS_ROLE": "main"})
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"uid": 61001, "euid": 61001, "gid": 61001, "egid": 61001, "groups": [], "role": "writer",
                                       "agent": "content-crew", "tenant": "acme-corp", "socket": "unix:///run/spire/agent.sock"}
    done = hexr_run("--role", "editor", "--contexts", crew_contexts, "--", PYTHON, "-c", REPORT)
    assert json.loads(done.stdout)["uid"] == 61002


@needs_root
@needs_python
def test_the_role_cannot_become_root_again(crew_contexts):
    attempt = ("import os\n"
               "for call in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0]), lambda: os.seteuid(0)):\n"
               "    try:\n        call(); print('regained')\n"
               "    except PermissionError:\n        print('refused')\n"
               "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    done = hexr_run("--role", "researcher", "--contexts", crew_contexts, "--", PYTHON, "-c", attempt)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == ["refused"] * 4 + ["0000000000000000"]


@needs_root
def test_exit_status_and_missing_commands(crew_contexts):
    assert hexr_run("--role", "writer", "--contexts", crew_contexts, "--", "sh", "-c", "exit 7").returncode == 7
    done = hexr_run("--role", "writer", "--contexts", crew_contexts, "--", "no-such-command-anywhere")
    assert (done.returncode, done.stderr) == (127, "hexr run: cannot run no-such-command-anywhere: not found in PATH\n")
    done = hexr_run("--role", "publisher", "--contexts", crew_contexts, "--", "true")
    assert done.returncode == 2 and "no process context for role 'publisher'" in done.stderr


@needs_root
def test_drop_privileges_in_a_child(tmp_path):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            launch.drop_privileges(61234)
            ok = os.getresuid() == (61234,) * 3 and os.getresgid() == (61234,) * 3 and os.getgroups() == []
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---- the keeper's logic, with a fake Workload API fetch ---------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def svid(sub=WRITER, lifetime=600.0, clock=None, n=0):
    exp = (clock.now if clock else time.time()) + lifetime
    return JwtSvid(unsigned_jwt(sub, exp, jti="t%d" % n), sub, exp)


def run_keeper(tmp_path, answers, rounds):
    """keep_fresh over `answers` (SVIDs or exceptions); the delays it waited, its reports, and
    the file's content after each round."""
    clock, path = FakeClock(), str(tmp_path / "jwt")
    answers = list(answers)
    delays, reports, seen = [], [], []

    def fetch():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wait(seconds):
        delays.append(seconds)
        seen.append(Path(path).read_text() if os.path.exists(path) else None)
        clock.now += seconds
        return len(delays) < rounds

    launch.keep_fresh(fetch, path, WRITER, wait, lambda kind, detail: reports.append((kind, detail)), now=clock)
    return delays, reports, seen, path


def test_keeper_refreshes_at_half_the_remaining_lifetime(tmp_path):
    clock = FakeClock()
    first, second = svid(lifetime=600, clock=clock, n=1), svid(lifetime=900, clock=clock, n=2)
    delays, reports, seen, path = run_keeper(tmp_path, [first, second], rounds=2)
    assert delays == [300.0, 300.0]  # the second (900 s) is fetched 300 s later: 600 s left, half of it
    assert reports == [("ok", ""), ("ok", "")]
    assert seen == [first.token, second.token]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["jwt"]  # no temporary file left


def test_keeper_backs_off_and_never_removes_a_good_token(tmp_path):
    clock = FakeClock()
    good = svid(lifetime=600, clock=clock, n=1)
    failure = RuntimeError("the Workload API is down")
    wrong = svid(sub=WRITER.replace("writer", "editor"), clock=clock, n=2)
    later = svid(lifetime=10_000, clock=clock, n=3)
    answers = [good] + [failure] * 7 + [wrong, later]
    delays, reports, seen, _ = run_keeper(tmp_path, answers, rounds=len(answers))
    assert delays[:9] == [300.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert seen[:9] == [good.token] * 9  # failures (and an SVID of another identity) leave it alone
    assert seen[9] == later.token
    assert reports[1] == ("fetch", "RuntimeError")
    assert reports[8] == ("fetch", "the Workload API gave an SVID for %s, not %s" % (wrong.spiffe_id, WRITER))
    assert all(good.token not in detail and later.token not in detail for _, detail in reports)


def test_keeper_reports_write_failures(tmp_path):
    clock = FakeClock()
    missing = tmp_path / "no-such-dir" / "jwt"
    reports = []
    launch.keep_fresh(lambda: svid(clock=clock), str(missing), WRITER, lambda s: False, lambda k, d: reports.append((k, d)), now=clock)
    assert reports == [("write", "FileNotFoundError: No such file or directory")]


def test_write_token_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "jwt")
    launch.write_token(path, "old.token.value")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        launch.write_token(path, "new.token.value")
    assert Path(path).read_text() == "old.token.value"
    assert os.listdir(tmp_path) == ["jwt"]


def test_refresh_delay_and_backoff():
    assert launch.refresh_delay(1000.0, 400.0) == 300.0
    assert launch.refresh_delay(1000.0, 999.5) == launch.MIN_REFRESH_SECONDS
    assert launch.refresh_delay(None, 0.0) == launch.MIN_REFRESH_SECONDS
    assert [launch.backoff(n) for n in (1, 2, 3, 6, 7, 100)] == [1.0, 2.0, 4.0, 30.0, 30.0, 30.0]


# ---- the keeper for real, against a fake Workload API (SPIRE itself: e2e/spire.test.ts) -------------

try:
    import grpc
    import jwt as pyjwt
    from spiffe._proto import workload_pb2, workload_pb2_grpc
except ImportError:  # pragma: no cover - hexr[spiffe,test] brings them
    grpc = None
needs_workload_api = pytest.mark.skipif(grpc is None, reason="needs grpc, PyJWT and py-spiffe (pip install 'hexr[spiffe]')")
Servicer = workload_pb2_grpc.SpiffeWorkloadAPIServicer if grpc is not None else object


class FakeWorkloadApi(Servicer):
    """FetchJWTSVID: an ES256 JWT-SVID of the SPIFFE ID asked for, or PERMISSION_DENIED as SPIRE
    answers a caller no entry matches."""

    def __init__(self, lifetime=300, deny=False):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.lifetime, self.deny, self.requests = lifetime, deny, []

    def FetchJWTSVID(self, request, context):
        if dict(context.invocation_metadata()).get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        self.requests.append((sorted(request.audience), request.spiffe_id))
        if self.deny:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")
        now = time.time()
        claims = {"sub": request.spiffe_id, "aud": list(request.audience), "iat": int(now), "exp": int(now + self.lifetime), "jti": "%d-%f" % (len(self.requests), now)}
        token = pyjwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "test", "typ": "JWT"})
        return workload_pb2.JWTSVIDResponse(svids=[workload_pb2.JWTSVID(spiffe_id=request.spiffe_id, svid=token)])


@pytest.fixture
def shared_dir():
    """A directory the role's uid can reach (pytest's tmp_path is root's alone)."""
    directory = tempfile.mkdtemp(prefix="hexr-keeper-")
    os.chmod(directory, 0o755)
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workload_api(shared_dir):
    def start(**options):
        servicer = FakeWorkloadApi(**options)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(servicer, server)
        socket = shared_dir / "agent.sock"
        server.add_insecure_port("unix://%s" % socket)
        server.start()
        os.chmod(socket, 0o777)  # every uid may connect, as to the SPIRE agent's socket
        servers.append(server)
        return "unix://%s" % socket, servicer

    servers = []
    yield start
    for server in servers:
        server.stop(0)


READ_TOKEN = """
import base64, json, os, stat, sys, time
path = os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE']
def claims():
    part = open(path).read().split('.')[1]
    return json.loads(base64.urlsafe_b64decode(part + '=' * (-len(part) % 4)))
first = claims()
time.sleep(float(sys.argv[1]))
st, dst = os.stat(path), os.stat(os.path.dirname(path))
print(json.dumps({'sub': first['sub'], 'aud': sorted(first['aud']), 'refreshed': claims()['jti'] != first['jti'],
                  'hexr_file': os.environ['HEXR_JWT_SVID_FILE'] == path,
                  'file': [st.st_uid, oct(stat.S_IMODE(st.st_mode))], 'dir': [dst.st_uid, oct(stat.S_IMODE(dst.st_mode))]}))
"""


@needs_root
@needs_python
@needs_workload_api
def test_the_keeper_writes_and_refreshes_the_roles_jwt_svid(crew_contexts, workload_api, shared_dir):
    socket, servicer = workload_api(lifetime=4)  # refreshed every 2 s
    token_file = shared_dir / "run" / "writer" / "jwt"
    started = time.monotonic()
    done = hexr_run("--role", "writer", "--contexts", crew_contexts, "--jwt-svid-file", token_file,
                    "--audience", "hexr-credential-injector", "--audience", "sts.amazonaws.com",
                    "--", PYTHON, "-c", READ_TOKEN, "3", env={"SPIFFE_ENDPOINT_SOCKET": socket})
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"sub": WRITER, "aud": ["hexr-credential-injector", "sts.amazonaws.com"], "refreshed": True,
                                       "hexr_file": True, "file": [61001, "0o600"], "dir": [61001, "0o700"]}
    assert servicer.requests[0] == (["hexr-credential-injector", "sts.amazonaws.com"], WRITER)
    assert len(servicer.requests) >= 2
    # The keeper went with the command: nothing held the output open after it exited.
    assert time.monotonic() - started < 15
    count = len(servicer.requests)
    time.sleep(2.5)
    assert len(servicer.requests) == count
    assert sorted(os.listdir(token_file.parent)) == ["jwt"]


@needs_root
@needs_python
@needs_workload_api
def test_no_svid_is_a_clear_error_and_nothing_runs(crew_contexts, workload_api, shared_dir):
    socket, servicer = workload_api(deny=True)
    token_file = shared_dir / "run" / "editor" / "jwt"
    done = hexr_run("--role", "editor", "--contexts", crew_contexts, "--jwt-svid-file", token_file, "--jwt-timeout", "2",
                    "--", PYTHON, "-c", "print('ran')", env={"SPIFFE_ENDPOINT_SOCKET": socket})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "hexr run: no SVID for uid 61002 (spiffe://hexr.local/agent/acme-corp/content-crew/editor) from the Workload API at %s within 2s: "
        "is the role registered (hexr-registrar)? (last error: FetchJwtSvidError (PERMISSION_DENIED))\n" % socket)
    assert servicer.requests and servicer.requests[0] == (["hexr-credential-injector"], "spiffe://hexr.local/agent/acme-corp/content-crew/editor")
    assert not token_file.exists()


@needs_root
@needs_python
@needs_workload_api
def test_a_token_file_the_role_cannot_write(crew_contexts, workload_api, shared_dir):
    socket, _ = workload_api()
    (shared_dir / "root-only").mkdir(mode=0o755)  # exists already: not the role's, not changed
    done = hexr_run("--role", "writer", "--contexts", crew_contexts, "--jwt-svid-file", shared_dir / "root-only" / "jwt",
                    "--", PYTHON, "-c", "print('ran')", env={"SPIFFE_ENDPOINT_SOCKET": socket})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "hexr run: uid 61001 cannot write the JWT-SVID to %s (PermissionError: Permission denied)\n" % (shared_dir / "root-only" / "jwt")
