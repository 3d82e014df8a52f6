"""The in-process L1 hit beside the sidecar's L1 and L2, measured in one run against a running stack.

    HEXR_SIDECAR_URL=http://127.0.0.1:15080 \\
    HEXR_BENCH_SIDECAR_B_URL=http://127.0.0.1:NNNNN \\
    HEXR_JWT_SVID_FILE=/tmp/svid.jwt  python sdk/python/bench_l1.py

HEXR_BENCH_SIDECAR_B_URL is a second sidecar sharing the first one's L2 (a second pod: the
stack's addSidecar()); without it the L2 row is left out. HEXR_BENCH_SERVICE (default aws_s3)
and HEXR_BENCH_ITERATIONS (default 2000) are optional.

  in-process L1   hexr's exchanger().resolve() on a hit (JWT-SVID file stat, key, L1 lookup), and
                  get_credentials() on a hit (adds the span and metrics: no-op without an SDK)
  sidecar L1      POST /exchange answered from Envoy's shared data (x-hexr-cache: L1), kept-alive
                  connection, as hexr sends it
  sidecar L2      POST /exchange to the second sidecar for a key the first one just exchanged:
                  answered from Valkey through the bridge (x-hexr-cache: L2); one sample per
                  region of the provider, since the answer fills that sidecar's L1

Prints medians and p99 in microseconds; never a credential.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import hexr
from hexr import _contract as C
from hexr.identity import default_source
from hexr.sidecar import SidecarClient, exchanger


def summary(samples_ns):
    us = sorted(s / 1000.0 for s in samples_ns)
    p99 = us[min(len(us) - 1, int(len(us) * 0.99))]
    return statistics.median(us), p99, len(us)


def main() -> int:
    service = os.environ.get("HEXR_BENCH_SERVICE", "aws_s3")
    iterations = int(os.environ.get("HEXR_BENCH_ITERATIONS", "2000"))
    provider = service.split("_", 1)[0]
    region = C.DEFAULT_REGIONS[provider]
    identity = default_source()
    token = identity.fetch().token
    rows = []

    hexr.get_credentials(service)  # warm: the first exchange (L3, or the sidecar's L1)
    ex = exchanger()
    samples = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        resolution = ex.resolve(identity, service, region)
        samples.append(time.perf_counter_ns() - t)
        assert resolution.source == "process"
    rows.append(("in-process L1 (resolve)",) + summary(samples))
    samples = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        hexr.get_credentials(service)
        samples.append(time.perf_counter_ns() - t)
    rows.append(("in-process L1 (get_credentials)",) + summary(samples))

    client = SidecarClient(os.environ.get("HEXR_SIDECAR_URL", "http://127.0.0.1:15080"))
    client.post(token, service, region)
    samples = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        status, headers, _ = client.post(token, service, region)
        samples.append(time.perf_counter_ns() - t)
        if status != 200 or headers.get("x-hexr-cache") != "L1":
            print("unexpected answer from the sidecar: %s %s" % (status, headers.get("x-hexr-cache")), file=sys.stderr)
            return 1
    rows.append(("sidecar L1 (POST /exchange)",) + summary(samples))

    b_url = os.environ.get("HEXR_BENCH_SIDECAR_B_URL")
    if b_url:
        pod_b = SidecarClient(b_url)
        samples = []
        for r in C.REGIONS[provider]:
            status, _, _ = client.post(token, service, r)  # pod A: L1 or L3, and L2 filled
            if status != 200:
                continue
            pod_b.post(token, "aws_ec2" if provider == "aws" else service, region)  # keep B's connection warm (any answer)
            t = time.perf_counter_ns()
            status, headers, _ = pod_b.post(token, service, r)
            elapsed = time.perf_counter_ns() - t
            if status == 200 and headers.get("x-hexr-cache") == "L2":
                samples.append(elapsed)
        if samples:
            rows.append(("sidecar L2 (second sidecar, Valkey)",) + summary(samples))

    print("%-38s %12s %12s %8s" % ("tier", "median µs", "p99 µs", "samples"))
    for name, median, p99, n in rows:
        print("%-38s %12.1f %12.1f %8d" % (name, median, p99, n))
    print("service %s, region %s, python %s" % (service, region, sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
