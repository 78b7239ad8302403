"""Identity over HTTP: refresh rotations/s, authenticated ``GET /v1/account``/s, password
logins/s against the Argon2 bound, and the resident memory of one worker.

Setup, as in :mod:`bench.http_overhead.run`: the server is one real ``bastion serve`` process
(one uvicorn worker, default settings: SQLite, real Argon2 parameters) pinned to CPU 0; the load
runs from CPU 1. A bare FastAPI app (``bench.http_overhead.apps:fastapi``) is measured in the
same run for the ratio.

Load generators:

- ``wrk`` for requests that can repeat (``GET /v1/account`` with one bearer token, the bare
  app's ``GET /bench``);
- an asyncio HTTP/1.1 client over raw keep-alive sockets (written here: httpx costs more CPU
  per request than the server under test) for refresh rotations, where every request consumes
  its token: each connection owns one session and chains its own refreshes. The bare app and
  ``GET /v1/account`` are measured with it too, so every ratio compares like with like.

Argon2 bound: ``cores / seconds per hash``, where cores are the CPUs the server may run on
and the hash time is measured here at the same (default) parameters; logins run with enough
concurrent clients to keep the hashing pool busy without overflowing its queue.

Memory: ``VmRSS`` of the worker from ``/proc/<pid>/status`` once started and idle, and its peak
sampled every 100 ms during the loads. Usage:
``.venv/bin/python -m bench.identity.http [--duration 10] [--rounds 3] [--connections 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bastion.identity.passwords import Argon2Hasher, PasswordSettings

SERVER_CPU = 0
LOAD_CPU = 1
PASSWORD = "Vivid-otter quarry lantern 42"  # noqa: S105 - benchmark input, not a secret
#: Issue 4 targets.
TARGET_REFRESH_PER_CORE = 1000
TARGET_BARE_RATIO = 0.25
TARGET_LOGIN_BOUND_RATIO = 0.9
TARGET_RSS_MIB = 150
#: Keycloak's published sizing, for the record.
KEYCLOAK_REFRESH_PER_VCPU = 120
KEYCLOAK_POD_MIB = 1250
LOGIN_EMAIL = "bench-login@example.com"
_TOKEN_LINE = re.compile(r"^Token: (\S+)\s*$", re.MULTILINE)


# -- processes -----------------------------------------------------------------------------
def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if _can_pin() else []


def _can_pin() -> bool:
    return bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], stderr: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{stderr.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The worker's pid: taskset execs the command, so it is the process we started."""
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_bastion(data_dir: Path) -> Server:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATA_DIR=str(data_dir),
        BASTION_SECRET_KEY="b" * 48,
        BASTION_MAILER="file",
        BASTION_LOG_LEVEL="warning",
        BASTION_PORT=str(port),
        # Every limit stays in the stack (its cost is measured) but far above the load: one
        # client address would otherwise be refused after 60 refreshes a minute.
        BASTION_RATELIMIT=json.dumps({"policies": {name: {"limit": 10_000_000} for name in (
            "login", "registration", "email-verification", "token", "api-ip", "api-user")}}),
    )  # fmt: skip
    bastion = str(Path(sys.executable).with_name("bastion"))
    stderr = data_dir / "serve.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*_pin(SERVER_CPU), bastion, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    _wait_for(port, process, stderr)
    return Server("bastion", port, process)


def start_bare(data_dir: Path) -> Server:
    port = _free_port()
    stderr = data_dir / "bare.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*_pin(SERVER_CPU), sys.executable, "-m", "uvicorn",
             "bench.http_overhead.apps:fastapi", "--factory", "--port", str(port),
             "--log-level", "warning", "--no-access-log", "--no-server-header"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    _wait_for(port, process, stderr)
    return Server("fastapi", port, process)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """Peak RSS of a process, sampled on a thread while a load runs."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------
class Connection:
    """One keep-alive connection; requests are sent one at a time (no pipelining)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        if self.reader is None:
            raise RuntimeError("not connected")
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class LoadResult:
    ok: int = 0
    failed: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Step = Callable[[Connection, int], Awaitable[bool]]


async def run_load(port: int, workers: int, seconds: float, step: Step) -> LoadResult:
    """``workers`` connections, each calling ``step(connection, worker)`` in a loop."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        connection = Connection(port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                if await step(connection, n):
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - start)
        finally:
            await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    result.seconds = time.perf_counter() - start
    return result


def _count_failure(result: LoadResult, status: int) -> None:
    result.failed[status] = result.failed.get(status, 0) + 1


# -- identity setup ----------------------------------------------------------------------------
async def create_user(port: int, data_dir: Path, email: str) -> None:
    connection = Connection(port)
    try:
        body = {"email": email, "password": PASSWORD, "display_name": "Bench User"}
        status, data = await connection.request("POST", "/v1/accounts", body)
        if status != 202:
            raise SystemExit(f"registration failed: {status} {data[:300]!r}")
        token = await _mailed_token(data_dir, email)
        status, data = await connection.request(
            "POST", "/v1/accounts/verify-email", {"token": token}
        )
        if status != 200:
            raise SystemExit(f"verification failed: {status} {data[:300]!r}")
    finally:
        await connection.close()


async def _mailed_token(data_dir: Path, email: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in sorted((data_dir / "mail").glob("*.json")):
            mail = json.loads(path.read_text())
            if mail["to"] == email and mail["kind"] == "verify_email":
                match = _TOKEN_LINE.search(mail["text"])
                if match:
                    return match.group(1)
        await asyncio.sleep(0.05)
    raise SystemExit(f"no verification mail for {email}")


async def login(connection: Connection, email: str) -> dict[str, str]:
    status, data = await connection.request(
        "POST", "/v1/sessions", {"email": email, "password": PASSWORD}
    )
    if status != 200:
        raise SystemExit(f"login failed: {status} {data[:300]!r}")
    return dict(json.loads(data))


# -- the measurements --------------------------------------------------------------------------
async def refresh_chains(port: int, email: str, workers: int, seconds: float) -> LoadResult:
    """Each connection logs in once, then chains refreshes, each consuming the last token."""
    tokens: list[str] = []
    setup = Connection(port)
    try:
        tokens = [(await login(setup, email))["refresh_token"] for _ in range(workers)]
    finally:
        await setup.close()
    failures = LoadResult()

    async def step(connection: Connection, n: int) -> bool:
        status, data = await connection.request(
            "POST", "/v1/sessions/refresh", {"refresh_token": tokens[n]}
        )
        if status != 200:
            _count_failure(failures, status)
            if status >= 500 or status == 401:
                raise SystemExit(f"refresh failed: {status} {data[:300]!r}")
            return False
        tokens[n] = json.loads(data)["refresh_token"]
        return True

    result = await run_load(port, workers, seconds, step)
    result.failed = failures.failed
    return result


async def repeated_get(
    port: int, path: str, headers: dict[str, str], workers: int, seconds: float
) -> LoadResult:
    failures = LoadResult()

    async def step(connection: Connection, _: int) -> bool:
        status, _data = await connection.request("GET", path, headers=headers)
        if status != 200:
            _count_failure(failures, status)
            return False
        return True

    result = await run_load(port, workers, seconds, step)
    result.failed = failures.failed
    return result


async def logins(port: int, email: str, workers: int, seconds: float) -> LoadResult:
    failures = LoadResult()

    async def step(connection: Connection, _: int) -> bool:
        status, _data = await connection.request(
            "POST", "/v1/sessions", {"email": email, "password": PASSWORD}
        )
        if status != 200:
            _count_failure(failures, status)
            return False
        return True

    result = await run_load(port, workers, seconds, step)
    result.failed = failures.failed
    return result


def wrk(port: int, path: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    command = [*_pin(LOAD_CPU), "wrk", "-t1", f"-c{connections}", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    url = f"http://127.0.0.1:{port}{path}"
    done = subprocess.run(
        [*command, f"-d{seconds}s", url], capture_output=True, text=True, check=True
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    if match is None:
        raise SystemExit(f"cannot parse wrk output:\n{done.stdout}")
    if non_2xx:
        probe = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(probe, timeout=5) as answer:  # noqa: S310
                seen = f"{answer.status}"
        except urllib.error.HTTPError as error:
            seen = f"{error.code} {error.read()[:300]!r}"
        raise SystemExit(f"wrk saw {non_2xx.group(1)} non-2xx answers on {path}; now: {seen}")
    return float(match.group(1))


def time_one_hash(samples: int = 15) -> float:
    """Median seconds of one Argon2id hash at the default parameters, on this (load) CPU."""
    hasher = Argon2Hasher(PasswordSettings())
    hasher.hash(PASSWORD)  # first-use costs
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        hasher.hash(PASSWORD)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Figures:
    refresh: list[LoadResult] = field(default_factory=list)
    account: list[LoadResult] = field(default_factory=list)
    bare: list[LoadResult] = field(default_factory=list)
    login: list[LoadResult] = field(default_factory=list)
    account_wrk: list[float] = field(default_factory=list)
    bare_wrk: list[float] = field(default_factory=list)


async def one_round(
    args: argparse.Namespace, bastion: Server, bare: Server, email: str, figures: Figures
) -> None:
    seconds, workers = args.duration, args.connections
    setup = Connection(bastion.port)
    try:
        access = (await login(setup, email))["access_token"]  # fresh: tokens live 5 minutes
    finally:
        await setup.close()
    bearer = {"Authorization": f"Bearer {access}"}
    figures.bare.append(await repeated_get(bare.port, "/bench", {}, workers, seconds))
    figures.account.append(
        await repeated_get(bastion.port, "/v1/account", bearer, workers, seconds)
    )
    figures.refresh.append(await refresh_chains(bastion.port, email, workers, seconds))
    if shutil.which("wrk"):
        figures.bare_wrk.append(wrk(bare.port, "/bench", {}, seconds, workers))
        figures.account_wrk.append(wrk(bastion.port, "/v1/account", bearer, seconds, workers))
    # Another account: a user's live sessions are capped (the oldest end), and this load opens
    # hundreds.
    figures.login.append(await logins(bastion.port, LOGIN_EMAIL, args.login_clients, seconds))


def _median_rate(results: list[LoadResult]) -> float:
    return statistics.median(r.rate for r in results)


def _line(name: str, results: list[LoadResult]) -> str:
    rates = ", ".join(f"{r.rate:.0f}" for r in results)
    p50 = statistics.median(r.p(0.5) for r in results)
    p99 = statistics.median(r.p(0.99) for r in results)
    failed: dict[int, int] = {}
    for r in results:
        for status, count in r.failed.items():
            failed[status] = failed.get(status, 0) + count
    extra = f"  non-2xx {failed}" if failed else ""
    return (
        f"{name:<34} {_median_rate(results):>9.1f}/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
        f"  ({rates}){extra}"
    )


@dataclass
class Machine:
    hash_s: float
    server_cores: int
    rss_idle: float
    rss_peak: float = 0.0


def report(figures: Figures, machine: Machine, args: argparse.Namespace) -> None:
    refresh = _median_rate(figures.refresh)
    account = _median_rate(figures.account)
    bare = _median_rate(figures.bare)
    login = _median_rate(figures.login)
    hash_s, server_cores = machine.hash_s, machine.server_cores
    bound = server_cores / hash_s
    print(
        f"Identity over HTTP: 1 worker on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}, "
        f"{args.rounds} rounds x {args.duration}s, {args.connections} connections "
        f"({args.login_clients} for logins); medians, all rounds in brackets"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load} (the machine's other load skews absolute figures)")
    print("-- asyncio keep-alive load generator --")
    print(_line("bare FastAPI GET /bench", figures.bare))
    print(_line("GET /v1/account (bearer)", figures.account))
    print(_line("POST /v1/sessions/refresh (chains)", figures.refresh))
    print(_line("POST /v1/sessions (password login)", figures.login))
    if figures.bare_wrk:
        bare_wrk, account_wrk = (
            statistics.median(figures.bare_wrk),
            statistics.median(figures.account_wrk),
        )
        print("-- wrk --")
        print(f"{'bare FastAPI GET /bench':<34} {bare_wrk:>9.1f}/s")
        print(f"{'GET /v1/account (bearer)':<34} {account_wrk:>9.1f}/s")
        print(f"GET /v1/account / bare (wrk):      {account_wrk / bare_wrk:.3f}")
    print("-- ratios and targets (issue 4) --")
    print(
        f"refresh / core:                    {refresh / server_cores:.0f}/s "
        f"(target >= {TARGET_REFRESH_PER_CORE}; Keycloak sizing {KEYCLOAK_REFRESH_PER_VCPU}/vCPU)"
    )
    print(
        f"refresh / bare app:                {refresh / bare:.3f} (target >= {TARGET_BARE_RATIO})"
    )
    print(
        f"GET /v1/account / bare app:        {account / bare:.3f} (target >= {TARGET_BARE_RATIO})"
    )
    print(
        f"one Argon2id hash (defaults):      {hash_s * 1000:.1f} ms "
        f"-> bound {bound:.1f} logins/s on {server_cores} core(s)"
    )
    target = TARGET_LOGIN_BOUND_RATIO
    print(f"logins / bound:                    {login / bound:.2f} (target >= {target})")
    print(
        f"RSS idle / peak under load:        {machine.rss_idle:.1f} MiB / "
        f"{machine.rss_peak:.1f} MiB "
        f"(target < {TARGET_RSS_MIB}; Keycloak sizing {KEYCLOAK_POD_MIB} MiB per pod)"
    )  # fmt: skip


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    bare = start_bare(data_dir)
    bastion = start_bastion(data_dir)
    try:
        await asyncio.sleep(1)
        machine = Machine(
            hash_s=time_one_hash(),
            server_cores=len(os.sched_getaffinity(bastion.pid)),
            rss_idle=rss_mib(bastion.pid),
        )
        email = "bench@example.com"
        await create_user(bastion.port, data_dir, email)
        await create_user(bastion.port, data_dir, LOGIN_EMAIL)
        figures = Figures()
        with RssSampler(bastion.pid) as sampler:
            for _ in range(args.rounds):
                await one_round(args, bastion, bare, email, figures)
        machine.rss_peak = sampler.peak
        report(figures, machine, args)
    finally:
        bastion.stop()
        bare.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--login-clients",
        type=int,
        default=8,
        help="concurrent logins: enough to keep the hashing pool busy, fewer than its queue",
    )
    args = parser.parse_args()
    if _can_pin():
        os.sched_setaffinity(0, {LOAD_CPU})  # the load generator stays off the server's CPU
    else:
        print("warning: one CPU or no taskset: server and load share the CPU", file=sys.stderr)
    try:
        import uvloop  # noqa: PLC0415 - optional: a faster loop for the load generator
    except ImportError:
        runner: Callable[[Awaitable[None]], None] = asyncio.run  # type: ignore[assignment]
    else:
        runner = uvloop.run  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        runner(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
