"""Recording an event on the HTTP overhead benchmark: a served Bastion, two loads.

One uvicorn worker pinned to CPU 0 serves :func:`bench.audit.latency.build_app` (Bastion's full
stack; sinks as ``bastion serve`` runs them: chained database + ECS log line at level info,
detectors on): ``/bench`` records nothing (the baseline), ``/bench-audit`` records one event.
The writer drains the queue in the same process, after the response (group commit: up to
50 ms later). The load runs on CPU 1. Three measurements, all reported:

- **saturation**: ``wrk -t1 -c32`` as fast as the server answers, alternating the paths round by
  round (which goes first alternates too), each load started once the server is idle (the
  writer's backlog drained): throughput (and p99) ratio. Medians over rounds, and each round's
  ratio.
- **paced latency, interleaved**: a fixed, moderate rate (``--rate`` requests per second in
  total over ``--paced-connections`` keep-alive connections, an open schedule: request ``k`` is
  due at ``k / rate``) from an asyncio client (:mod:`bench.audit.paced`) that times every request
  client-side (monotonic clock). The paths alternate request by request, in pairs of adjacent
  slots whose order is drawn per pair (seeded): both paths see the same machine state, which
  whole rounds of one path did not (their p50 moved between about 0.25 and 0.95 ms from round
  to round on either path). Reported: p50/p90/p99 per path over every request, the differences
  and ratios, and the paired estimate (:mod:`bench.paired`): the median of the per-pair
  differences with its sign-test 95 % interval, as microseconds and as a share of the
  ``/bench`` median, and a paired bootstrap of the p50 ratio. This is the **latency** one event
  adds to its own request (building it, queueing it). The writer's batches land on whichever
  requests are being served, of either path, so they shift both paths alike and do not show in
  the difference. The random order matters here: the writer's 50 ms timer is 10 slots at
  200 req/s, and with a fixed alternation it would fall on the recording path every time.
- **server CPU per request**: separate phases of one path each at the same rate and duration,
  the worker's CPU time from before the phase to ``--drain`` seconds after its last answer,
  divided by the requests answered, read two ways: the live threads' ``schedstat``
  (nanoseconds) and ``/proc/<pid>/stat`` (user + system of every thread, exited ones too, in
  1/``CLK_TCK`` steps); the two agree unless a thread came and went. This is the event's whole
  **cost**, the writer's work included; it also counts the worker's idle work over the phase,
  alike on both paths. The latency percentiles of these phases are printed too, but they are
  not paired (one path at a time).

Nothing is trimmed: every answered request counts; non-2xx answers are counted and left out, and
a pair with one is left out whole. The load average is printed at the start and the end. Usage:
``.venv/bin/python -m bench.audit.http [--duration 8] [--rounds 3] [--rate 200]
[--paced-connections 4] [--seed 0] [--paced-only] [--aa]`` (``--rate 0``: saturation only;
``--aa``: the A/A control, where ``/bench-audit`` records nothing either, so every difference
printed is the harness's own: it should be nil). Both paths are one route of the app
(:func:`bench.audit.latency.build_app`), so they cost the same up to the event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI

from bench.audit.common import machine
from bench.audit.latency import build_app
from bench.audit.paced import Phase, interleaved_order, run_phase, single_order
from bench.http_overhead.run import _free_port, _pin, _wait_for
from bench.identity.http import CAN_PIN, process_cpu_seconds
from bench.paired import bootstrap_ratio, median_interval, percentile

PATHS = ("/bench", "/bench-audit")
BASE, AUDITED = PATHS
#: Issue 7: recording an event adds under 5 % to a request.
TARGET_ADDED = 0.05
SERVER_CPU, LOAD_CPU = 0, 1


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    #: Answers that were not 2xx/3xx (wrk counts them in req/s) and socket errors/timeouts.
    bad: int = 0
    #: Server CPU seconds per answered request, the writer's drain after the load included.
    cpu: float = 0.0
    #: Seconds the server stayed busy after the load (the writer's backlog), to 0.5 s.
    drain: float = 0.0


def app() -> FastAPI:
    """The uvicorn factory (``bench.audit.http:app``)."""
    from bastion import logging as bastion_logging  # noqa: PLC0415

    bastion_logging.configure("info", json=True)  # stdout goes to /dev/null
    event = os.environ.get("BENCH_AUDIT_EVENT", "1") != "0"  # "0": the A/A control (--aa)
    return build_app(
        Path(os.environ["BENCH_DATA_DIR"]), None, log_sink=True, detectors=True, event=event
    )


def _ms(value: str, unit: str) -> float:
    return (
        float(value) / 1000
        if unit == "us"
        else float(value) * 1000
        if unit == "s"
        else float(value)
    )


def _parse(output: str) -> Run:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if rps is None or p50 is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = int(non_2xx.group(1)) if non_2xx else 0
    bad += sum(int(n) for n in errors.groups()) if errors else 0
    return Run(float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), bad)


def _wrk(url: str, duration: int, connections: int) -> Run:
    wrk = [*_pin(LOAD_CPU), "wrk", "-t1", f"-c{connections}", "--latency", f"-d{duration}s"]
    completed = subprocess.run([*wrk, url], capture_output=True, text=True, check=True)
    return _parse(completed.stdout)


def _report(title: str, results: dict[str, list[Run]]) -> None:
    rps = {p: statistics.median(r.rps for r in results[p]) for p in PATHS}
    p50 = {p: statistics.median(r.p50_ms for r in results[p]) for p in PATHS}
    p99 = {p: statistics.median(r.p99_ms for r in results[p]) for p in PATHS}
    print(title)
    for path in PATHS:
        runs = ", ".join(
            f"{r.rps:.0f}/{r.p50_ms:.2f}/{r.p99_ms:.2f}" + (f" ({r.bad} bad)" if r.bad else "")
            for r in results[path]
        )
        print(
            f"  {path:12} {rps[path]:8.0f} req/s  p50 {p50[path]:7.3f} ms  p99 {p99[path]:7.3f} ms"
            f"  (rounds, req/s/p50/p99: {runs})"
        )
    base, audited = "/bench", "/bench-audit"
    print(
        f"  one event per request: throughput {rps[audited] / rps[base]:.3f}x; "
        f"p50 +{(p50[audited] - p50[base]) * 1000:.0f} us ({p50[audited] / p50[base]:.3f}x); "
        f"p99 +{(p99[audited] - p99[base]) * 1000:.0f} us ({p99[audited] / p99[base]:.3f}x)"
    )
    pairs = list(zip(results[base], results[audited], strict=True))
    ratios = [a.rps / b.rps for b, a in pairs]
    print(
        f"  throughput ratio per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.3f}x"
    )
    # wrk's rate counts answers only: events still queued when the load stops are written
    # after it. The server's CPU a request, drain included, is the cost the worker must sustain.
    for path in PATHS:
        cpus = ", ".join(f"{r.cpu * 1e6:.0f}" for r in results[path])
        drains = ", ".join(f"{r.drain:.1f}" for r in results[path])
        print(
            f"  {path:12} server CPU a request, drain included, us: {cpus}; busy after: {drains} s"
        )
    cost = [b.cpu / a.cpu for b, a in pairs if a.cpu]
    if cost:
        print(
            f"  sustainable throughput ratio (CPU a request, /bench over /bench-audit) per round: "
            f"{', '.join(f'{r:.3f}' for r in cost)}; median {statistics.median(cost):.3f}x"
        )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:+.0f}"


def _distribution(latencies: list[float]) -> str:
    p50, p90, p99 = (percentile(latencies, q) * 1000 for q in (50, 90, 99))
    return f"n {len(latencies):6}  p50 {p50:6.3f}  p90 {p90:6.3f}  p99 {p99:6.3f} ms"


def _report_paced(args: argparse.Namespace, phases: list[Phase]) -> None:
    latencies = {p: [s for phase in phases for s in phase.latencies(p)] for p in PATHS}
    pairs = [pair for phase in phases for pair in phase.pairs(BASE, AUDITED)]
    print(
        f"paced, interleaved: {args.rate:.0f} req/s over {args.paced_connections} connections, "
        f"{len(phases)} x {args.duration} s, the two paths in pairs of adjacent requests "
        f"({1000 / args.rate:.1f} ms apart), order drawn per pair (seed {args.seed}+round)"
    )
    for path in PATHS:
        print(f"  {path:12} {_distribution(latencies[path])}")
    diffs = []
    for q in (50, 90, 99):
        base, audited = (percentile(latencies[p], q) for p in PATHS)
        diffs.append(f"p{q} {_us(audited - base)} us ({audited / base:.3f}x)")
    print(f"  {AUDITED} - {BASE}: " + "; ".join(diffs))
    base_p50 = percentile(latencies[BASE], 50)
    added = median_interval([audited - base for base, audited in pairs])
    share = [x / base_p50 for x in (added.value, added.low, added.high)]
    print(
        f"  paired, {len(pairs)} pairs: median of per-pair differences {_us(added.value)} us, "
        f"95 % interval [{_us(added.low)}, {_us(added.high)}] us (sign test) = "
        f"{share[0]:+.1%} [{share[1]:+.1%}, {share[2]:+.1%}] of the {BASE} p50"
    )
    ratio = bootstrap_ratio([b for b, _ in pairs], [a for _, a in pairs], seed=args.seed)
    print(
        f"  paired bootstrap of the p50 ratio: {ratio.value:.3f}x, "
        f"95 % interval [{ratio.low:.3f}, {ratio.high:.3f}]"
    )
    rounds = ", ".join(
        f"{_us(statistics.median(a - b for b, a in phase.pairs(BASE, AUDITED)))}/"
        f"{percentile(phase.latencies(BASE), 50) * 1000:.2f}"
        for phase in phases
    )
    print(f"  per round, median per-pair difference us / {BASE} p50 ms: {rounds}")
    if share[2] < TARGET_ADDED:
        verdict = f"under {TARGET_ADDED:.0%}: the whole interval is below"
    elif share[1] > TARGET_ADDED:
        verdict = f"over {TARGET_ADDED:.0%}: the whole interval is above"
    else:
        verdict = f"undecided: the interval contains {TARGET_ADDED:.0%} (more requests narrow it)"
    print(f"  latency added by one event (target < {TARGET_ADDED:.0%}): {verdict}")
    lags = [lag for phase in phases for lag in phase.lag]
    late = sum(lag > 1 / args.rate for lag in lags)
    rates = ", ".join(f"{len(phase.paths) / phase.elapsed:.1f}" for phase in phases)
    print(
        f"  schedule: req/s {rates}; send lag p50 {percentile(lags, 50) * 1000:.2f}, p99 "
        f"{percentile(lags, 99) * 1000:.2f}, max {max(lags) * 1000:.2f} ms; {late} requests sent "
        f"more than {1000 / args.rate:.1f} ms late; non-2xx {sum(p.failed for p in phases)}"
    )


def _report_cpu(
    args: argparse.Namespace, cpu: dict[str, list[Cpu]], single: dict[str, list[Phase]]
) -> None:
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK") / (args.rate * args.duration)
    print(
        f"server CPU per request: one path per phase at {args.rate:.0f} req/s, {args.duration} s "
        f"+ {args.drain} s drain; medians, rounds in brackets; live threads' schedstat (ns) and "
        f"/proc/<pid>/stat (every thread, one tick = {tick_us:.1f} us per request); "
        "latency of these phases not paired"
    )
    for path in PATHS:
        threads = ", ".join(f"{c.threads * 1e6:.0f}" for c in cpu[path])
        ticks = ", ".join(f"{c.ticks * 1e6:.0f}" for c in cpu[path])
        latencies = [s for phase in single[path] for s in phase.latencies(path)]
        print(
            f"  {path:12} {statistics.median(c.threads for c in cpu[path]) * 1e6:6.1f} us "
            f"({threads}), stat {statistics.median(c.ticks for c in cpu[path]) * 1e6:4.0f} us "
            f"({ticks})  {_distribution(latencies)}"
        )
    for name in ("threads", "ticks"):
        base, audited = (statistics.median(getattr(c, name) for c in cpu[p]) for p in PATHS)
        print(
            f"  one event ({'schedstat' if name == 'threads' else 'stat'}): "
            f"{_us(audited - base)} us of server CPU ({audited / base:.3f}x)"
        )


def _paced(port: int, args: argparse.Namespace, order: list[str]) -> Phase:
    try:
        from uvloop import run as run_loop  # noqa: PLC0415 - optional: a leaner client
    except ImportError:
        run_loop = asyncio.run  # type: ignore[assignment]
    return run_loop(run_phase(port, args.rate, args.paced_connections, order))


@dataclass(frozen=True)
class Cpu:
    """Server CPU seconds per answered request, two ways."""

    #: Live threads, ``/proc/<pid>/task/*/schedstat``: nanoseconds; misses a thread that exits.
    threads: float
    #: The process, ``/proc/<pid>/stat``: every thread, exited ones too; 1/``CLK_TCK`` steps.
    ticks: float


def _thread_cpu_seconds(pid: int) -> float:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9


def _cpu_phase(pid: int, port: int, args: argparse.Namespace, path: str) -> tuple[Cpu, Phase]:
    """Server CPU per answered request of a phase of ``path`` only, and the phase."""
    threads, ticks = _thread_cpu_seconds(pid), process_cpu_seconds(pid)
    phase = _paced(port, args, single_order(round(args.rate * args.duration), path))
    time.sleep(args.drain)  # the writer's batches come after the last answer
    answered = max(len(phase.latencies(path)), 1)
    threads = (_thread_cpu_seconds(pid) - threads) / answered
    return Cpu(threads, (process_cpu_seconds(pid) - ticks) / answered), phase


#: The server counts as idle when it used under this share of a core over IDLE_WINDOW seconds.
IDLE_SHARE = 0.05
IDLE_WINDOW = 0.5
IDLE_TIMEOUT = 60.0


def _wait_idle(pid: int) -> float:
    """Wait (at least one window, at most ``IDLE_TIMEOUT``) until the server is idle: after a
    ``/bench-audit`` load its writer may still be draining the queue. Returns the seconds it
    was still busy (the windows before the idle one)."""
    start = time.monotonic()
    deadline = start + IDLE_TIMEOUT
    while True:
        window = time.monotonic()
        before = _thread_cpu_seconds(pid)
        time.sleep(IDLE_WINDOW)
        if _thread_cpu_seconds(pid) - before < IDLE_SHARE * IDLE_WINDOW:
            return window - start
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not go idle within {IDLE_TIMEOUT:.0f} s")


def _saturate(pid: int, url: str, args: argparse.Namespace) -> Run:
    """One wrk load on an idle server, and the server's CPU a request, from the load's start to
    the server's next idle window: the writer's backlog, drained after the load, included."""
    _wait_idle(pid)
    cpu = process_cpu_seconds(pid)
    run = _wrk(url, args.duration, args.connections)
    drain = _wait_idle(pid)
    answered = max(run.rps * args.duration, 1.0)
    return replace(run, cpu=(process_cpu_seconds(pid) - cpu) / answered, drain=drain)


@dataclass
class Results:
    saturated: dict[str, list[Run]]
    paced: list[Phase]
    cpu: dict[str, list[Cpu]]
    single: dict[str, list[Phase]]


def _measure(port: int, pid: int, args: argparse.Namespace) -> Results:
    results = Results({p: [] for p in PATHS}, [], {p: [] for p in PATHS}, {p: [] for p in PATHS})
    requests = round(args.rate * args.duration)
    if not args.paced_only:
        for path in PATHS:  # warm-up
            _wrk(f"http://127.0.0.1:{port}{path}", 2, args.connections)
    if args.rate:  # warm-up of the client's path, not measured
        _paced(port, args, interleaved_order(round(args.rate * 2), PATHS, -1))
    for n in range(args.rounds):
        if not args.paced_only:
            for path in PATHS if n % 2 == 0 else PATHS[::-1]:  # alternate which goes first
                url = f"http://127.0.0.1:{port}{path}"
                results.saturated[path].append(_saturate(pid, url, args))
        if not args.rate:
            continue
        time.sleep(1)
        order = interleaved_order(requests, PATHS, args.seed + n)
        results.paced.append(_paced(port, args, order))
        for path in PATHS if n % 2 == 0 else PATHS[::-1]:  # alternate which goes first
            time.sleep(1)
            cpu, phase = _cpu_phase(pid, port, args, path)
            results.cpu[path].append(cpu)
            results.single[path].append(phase)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0, help="paced req/s in total (0: skip)")
    parser.add_argument("--paced-connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="of the paced order (+ the round)")
    parser.add_argument("--drain", type=float, default=0.5, help="seconds after a CPU phase")
    parser.add_argument("--paced-only", action="store_true", help="skip the saturation load")
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A control: /bench-audit records nothing either (the harness's own difference)",
    )
    args = parser.parse_args()
    print(f"run: {machine()}")
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})  # the paced client stays off the server's CPU
    with tempfile.TemporaryDirectory() as tmp:
        from bastion.storage import migrate  # noqa: PLC0415

        asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{Path(tmp) / 'bastion.db'}"))
        port = _free_port()
        # Served as `bastion serve` serves Bastion (bench/serve.py).
        command = [*_pin(SERVER_CPU), sys.executable, "-m", "bench.serve", "bench.audit.http:app"]
        command += [str(port), "bastion"]
        server = subprocess.Popen(
            command,
            env={**os.environ, "BENCH_DATA_DIR": tmp, "BENCH_AUDIT_EVENT": "0" if args.aa else "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port, server, timeout=120)
            results = _measure(port, server.pid, args)  # taskset execs: pid is the worker's
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.rounds} rounds x {args.duration}s each")
    if args.aa:
        print("A/A CONTROL: /bench-audit records no event; any difference is the harness's")
    if not args.paced_only:
        _report(f"saturation: {args.connections} connections (medians)", results.saturated)
    if args.rate:
        _report_paced(args, results.paced)
        _report_cpu(args, results.cpu, results.single)
    print("load average at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
