"""What a compromised role process can get of another role's identity: run as one role
(`hexr run --role researcher -- python identity_probe.py ...`), it tries every way the trust
boundary (README, "Identity") says it cannot succeed, and prints one JSON line of outcomes. It
never prints a token: only SPIFFE IDs and error names.

    --victim-token-file   the other role's JWT-SVID file (kept by its `hexr run --jwt-svid-file`)
    --victim-pid          a process of the other role
    --victim-uid          the other role's uid
    --server-socket       the SPIRE server's API socket
    --victim-spiffe-id    the other role's SPIFFE ID, asked for by name
    --claim-role          the role a forged marker file claims
"""

from __future__ import annotations

import argparse
import json
import os
import socket


def outcome(action) -> str:
    """"ok" when `action` succeeds, else the name of the error it raised."""
    try:
        action()
        return "ok"
    except Exception as error:  # noqa: BLE001 - the probe reports whatever stops it
        return type(error).__name__


def my_identities(client, audience: str) -> dict:
    x509 = sorted(str(svid.spiffe_id) for svid in client.fetch_x509_svids())
    jwt = str(client.fetch_jwt_svid(audience={audience}).spiffe_id)
    return {"x509": x509, "jwt": jwt}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--victim-token-file", required=True)
    parser.add_argument("--victim-pid", type=int, required=True)
    parser.add_argument("--victim-uid", type=int, required=True)
    parser.add_argument("--server-socket", required=True)
    parser.add_argument("--victim-spiffe-id", required=True)
    parser.add_argument("--claim-role", required=True)
    parser.add_argument("--audience", default="hexr-credential-injector")
    args = parser.parse_args()

    from spiffe import SpiffeId, WorkloadApiClient

    report: dict = {"uid": os.getuid()}
    with WorkloadApiClient() as client:
        report["before"] = my_identities(client, args.audience)
        # The Workload API lets a caller name the identity it wants a JWT-SVID for.
        victim = SpiffeId(args.victim_spiffe_id)
        report["ask_for_victim_jwt"] = outcome(lambda: client.fetch_jwt_svid(audience={args.audience}, subject=victim))

        # The SDK's process-context marker is bookkeeping, not attestation: claim another role in it.
        marker_dir = os.environ.get("HEXR_CONTEXT_DIR", "/tmp/hexr-context")
        agent = os.environ.get("HEXR_AGENT_NAME", "content-crew")
        forged = {"agent_name": agent, "process_role": args.claim_role, "tenant": os.environ.get("HEXR_TENANT", ""), "pid": os.getpid()}

        def forge_marker() -> None:
            with open(os.path.join(marker_dir, "%s-%s.json" % (agent, args.claim_role)), "w") as out:
                json.dump(forged, out)

        report["forge_marker"] = outcome(forge_marker)
        report["after_marker"] = my_identities(client, args.audience)

    report["read_victim_token"] = outcome(lambda: open(args.victim_token_file).read())
    report["list_victim_token_dir"] = outcome(lambda: os.listdir(os.path.dirname(args.victim_token_file)))
    report["read_victim_environ"] = outcome(lambda: open("/proc/%d/environ" % args.victim_pid, "rb").read())
    report["read_victim_memory"] = outcome(lambda: open("/proc/%d/mem" % args.victim_pid, "rb").read(1))
    report["become_victim"] = outcome(lambda: os.setuid(args.victim_uid))
    report["become_root"] = outcome(lambda: os.setuid(0))

    def dial_server() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(args.server_socket)

    report["dial_spire_server"] = outcome(dial_server)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
