"""Identity over HTTP: refresh rotations/s, authenticated ``GET /v1/account``/s, password
logins/s against the Argon2 bound, and the resident memory of one worker.

As in :mod:`bench.http_overhead.run`, the server is one real ``bastion serve`` (one uvicorn
worker, defaults: SQLite, Argon2 at OWASP's parameters) pinned to CPU 0, with the load on CPU 1,
and a bare FastAPI app (``bench.http_overhead.apps:fastapi``) is measured in the same run.

Load: ``wrk`` where a request can repeat (``GET /v1/account`` with one bearer token, the bare
app), and a small asyncio HTTP/1.1 client over keep-alive sockets (httpx would cost more CPU per
request than the server under test) where it cannot: each refresh consumes its token, so each
connection owns a session and chains its own refreshes. The bare app and ``GET /v1/account``
run on both generators, so every ratio compares like with like.

Argon2 bound: ``cores / seconds per hash``, the hash timed at the defaults on the server's CPU
in each round just before its logins (enough concurrent logins to keep the hashing pool busy,
fewer than its queue). On a shared machine other processes take part of the server's CPU during
the logins, so the run also reads the server's CPU time and that CPU's busy time
(``/proc``): the **load-adjusted bound** counts only the CPU time other processes left free
(see :mod:`bench.identity.passwords`), and the server's CPU time per login shows what a login
costs beyond its hash. Memory: ``VmRSS`` from ``/proc/<pid>/status``, idle after start, after
the two registrations (the password-strength checker loaded), and its peak sampled every 100 ms
under load. Usage:
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
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bastion.identity.passwords import Argon2Hasher, PasswordSettings
from bench.identity.passwords import machine_busy_seconds

SERVER_CPU = 0
LOAD_CPU = 1
PASSWORD = "Vivid-otter quarry lantern 42"  # noqa: S105 - benchmark input, not a secret
#: Issue 4 targets, and Keycloak's published sizing for the record.
TARGET_REFRESH_PER_CORE = 1000
TARGET_BARE_RATIO = 0.25
TARGET_LOGIN_BOUND_RATIO = 0.9
TARGET_RSS_MIB = 150
KEYCLOAK_REFRESH_PER_VCPU = 120
KEYCLOAK_POD_MIB = 1250
LOGIN_EMAIL = "bench-login@example.com"
_TOKEN_LINE = re.compile(r"^Token: (\S+)\s*$", re.MULTILINE)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection: *close", re.IGNORECASE)


# -- processes -----------------------------------------------------------------------------
CAN_PIN = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if CAN_PIN else []


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
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid  # the worker itself: taskset execs the command

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start(name: str, command: list[str], data_dir: Path, env: dict[str, str]) -> Server:
    port = _free_port()
    stderr = data_dir / f"{name}.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*_pin(SERVER_CPU), *command, "--port", str(port)],
            env={**env, "BASTION_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    _wait_for(port, process, stderr)
    return Server(port, process)


def start_bastion(data_dir: Path) -> Server:
    """``bastion serve`` with its defaults (SQLite, Argon2 at OWASP's parameters)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATA_DIR=str(data_dir),
        BASTION_SECRET_KEY="b" * 48,
        BASTION_MAILER="file",
        BASTION_LOG_LEVEL="warning",
        # Every limit stays in the stack (its cost is measured) but far above the load: one
        # client address would otherwise be refused after 60 refreshes a minute.
        BASTION_RATELIMIT=json.dumps({"policies": {name: {"limit": 10_000_000} for name in (
            "login", "registration", "email-verification", "token", "api-ip", "api-user")}}),
    )  # fmt: skip
    return _start(
        "bastion", [str(Path(sys.executable).with_name("bastion")), "serve"], data_dir, env
    )


def start_bare(data_dir: Path) -> Server:
    command = [sys.executable, "-m", "uvicorn", "bench.http_overhead.apps:fastapi", "--factory",
               "--log-level", "warning", "--no-access-log", "--no-server-header"]  # fmt: skip
    return _start("fastapi", command, data_dir, dict(os.environ))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextlib.asynccontextmanager
async def peak_rss(pid: int, interval: float = 0.1) -> AsyncIterator[list[float]]:
    """Samples a process's RSS every ``interval`` s while the block runs; yields ``[peak]``."""
    peak = [rss_mib(pid)]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_mib(pid))
            await asyncio.sleep(interval)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()


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
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        data = await self.reader.readexactly(int(length.group(1))) if length else b""
        if _CLOSE.search(head):
            await self.close()
        return int(head[9:12]), data

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

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

    def p(self, percent: int) -> float:
        """A latency percentile in milliseconds."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[percent - 1] * 1000


#: One request of a load: returns its HTTP status (2xx counts as done).
Step = Callable[[Connection, int], Awaitable[int]]


async def run_load(port: int, workers: int, seconds: float, step: Step) -> LoadResult:
    """``workers`` connections, each calling ``step(connection, worker)`` in a loop."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        async with Connection(port) as connection:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status = await step(connection, n)
                if 200 <= status < 300:
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - start)
                else:
                    result.failed[status] = result.failed.get(status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    result.seconds = time.perf_counter() - start
    return result


# -- identity setup ----------------------------------------------------------------------------
async def call(connection: Connection, path: str, body: object, expect: int) -> bytes:
    """POST ``body`` to ``path``; anything but ``expect`` ends the benchmark (a setup bug)."""
    status, data = await connection.request("POST", path, body)
    if status != expect:
        raise SystemExit(f"POST {path}: {status} {data[:300]!r}")
    return data


async def create_user(port: int, data_dir: Path, email: str) -> None:
    async with Connection(port) as connection:
        body = {"email": email, "password": PASSWORD, "display_name": "Bench User"}
        await call(connection, "/v1/accounts", body, 202)
        token = await _mailed_token(data_dir, email)
        await call(connection, "/v1/accounts/verify-email", {"token": token}, 200)


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
    body = {"email": email, "password": PASSWORD}
    return dict(json.loads(await call(connection, "/v1/sessions", body, 200)))


# -- the measurements --------------------------------------------------------------------------
async def refresh_chains(port: int, email: str, workers: int, seconds: float) -> LoadResult:
    """Each connection logs in once, then chains refreshes, each consuming the last token."""
    async with Connection(port) as setup:
        tokens = [(await login(setup, email))["refresh_token"] for _ in range(workers)]

    async def step(connection: Connection, n: int) -> int:
        body = {"refresh_token": tokens[n]}
        status, data = await connection.request("POST", "/v1/sessions/refresh", body)
        if status == 200:
            tokens[n] = json.loads(data)["refresh_token"]
        elif status >= 500 or status == 401:  # the chain is broken: a bug, not a figure
            raise SystemExit(f"refresh failed: {status} {data[:300]!r}")
        return status

    return await run_load(port, workers, seconds, step)


async def repeated(
    port: int,
    method: str,
    path: str,
    workers: int,
    seconds: float,
    *,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """The same request over and over on ``workers`` connections."""

    async def step(connection: Connection, _: int) -> int:
        return (await connection.request(method, path, body, headers))[0]

    return await run_load(port, workers, seconds, step)


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
    if non_2xx:  # e.g. the token expired or a limit answered: the figure would be wrong
        raise SystemExit(f"wrk saw {non_2xx.group(1)} non-2xx answers on {path}")
    return float(match.group(1))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_one_hash(samples: int = 9) -> tuple[float, float]:
    """Median wall and CPU seconds of one Argon2id hash at the default parameters, measured on
    the server's CPU while the server is idle (between loads): the bound must describe the
    server's core."""
    hasher = Argon2Hasher(PasswordSettings())
    mine = os.sched_getaffinity(0)
    if CAN_PIN:
        os.sched_setaffinity(0, {SERVER_CPU})
    try:
        hasher.hash(PASSWORD)  # first-use costs
        times, cpu_times = [], []
        for _ in range(samples):
            start, cpu = time.perf_counter(), time.thread_time()
            hasher.hash(PASSWORD)
            cpu_times.append(time.thread_time() - cpu)
            times.append(time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, mine)
    return statistics.median(times), statistics.median(cpu_times)


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Figures:
    refresh: list[LoadResult] = field(default_factory=list)
    account: list[LoadResult] = field(default_factory=list)
    bare: list[LoadResult] = field(default_factory=list)
    login: list[LoadResult] = field(default_factory=list)
    hash_s: list[float] = field(default_factory=list)
    hash_cpu: list[float] = field(default_factory=list)
    #: Per login round: CPU seconds of the server, and of other processes on its CPU.
    login_server_cpu: list[float] = field(default_factory=list)
    login_others_cpu: list[float] = field(default_factory=list)
    account_wrk: list[float] = field(default_factory=list)
    bare_wrk: list[float] = field(default_factory=list)
    server_cores: int = 1
    rss_idle: float = 0.0
    rss_registered: float = 0.0
    rss_peak: float = 0.0


async def one_round(
    args: argparse.Namespace, bastion: Server, bare: Server, email: str, figures: Figures
) -> None:
    seconds, workers = args.duration, args.connections
    async with Connection(bastion.port) as setup:
        access = (await login(setup, email))["access_token"]  # fresh: tokens live 5 minutes
    bearer = {"Authorization": f"Bearer {access}"}
    figures.bare.append(await repeated(bare.port, "GET", "/bench", workers, seconds))
    figures.account.append(
        await repeated(bastion.port, "GET", "/v1/account", workers, seconds, headers=bearer)
    )
    figures.refresh.append(await refresh_chains(bastion.port, email, workers, seconds))
    if shutil.which("wrk"):
        figures.bare_wrk.append(wrk(bare.port, "/bench", {}, seconds, workers))
        figures.account_wrk.append(wrk(bastion.port, "/v1/account", bearer, seconds, workers))
    # Another account: a user's live sessions are capped (the oldest end), and this load opens
    # hundreds.
    hash_wall, hash_cpu = time_one_hash()  # same round, same core, just before the logins
    figures.hash_s.append(hash_wall)
    figures.hash_cpu.append(hash_cpu)
    credentials = {"email": LOGIN_EMAIL, "password": PASSWORD}
    server_cpu = process_cpu_seconds(bastion.pid)
    busy = machine_busy_seconds({SERVER_CPU})
    figures.login.append(
        await repeated(
            bastion.port, "POST", "/v1/sessions", args.login_clients, seconds, body=credentials
        )
    )
    server_cpu = process_cpu_seconds(bastion.pid) - server_cpu
    figures.login_server_cpu.append(server_cpu)
    figures.login_others_cpu.append(max(machine_busy_seconds({SERVER_CPU}) - busy - server_cpu, 0))


def _line(name: str, results: list[LoadResult]) -> str:
    rates = ", ".join(f"{r.rate:.0f}" for r in results)
    p50 = statistics.median(r.p(50) for r in results)
    p99 = statistics.median(r.p(99) for r in results)
    failed = sum((Counter(r.failed) for r in results), Counter())
    extra = f"  non-2xx {dict(failed)}" if failed else ""
    rate = statistics.median(r.rate for r in results)
    return f"{name:<34} {rate:>9.1f}/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  ({rates}){extra}"


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def report(figures: Figures, args: argparse.Namespace) -> None:
    refresh, account, bare, login = (
        statistics.median(r.rate for r in rs)
        for rs in (figures.refresh, figures.account, figures.bare, figures.login)
    )
    hash_s, cores = statistics.median(figures.hash_s), figures.server_cores
    bound = cores / hash_s
    hashes = ", ".join(f"{h * 1000:.1f}" for h in figures.hash_s)
    hash_cpu = statistics.median(figures.hash_cpu)
    per_login = statistics.median(
        cpu / max(r.ok, 1) for cpu, r in zip(figures.login_server_cpu, figures.login, strict=True)
    )
    others = statistics.median(
        o / (cores * r.seconds)
        for o, r in zip(figures.login_others_cpu, figures.login, strict=True)
    )
    # Per round: logins/s against what the CPU time left by others allows at one hash each.
    adjusted_rounds = [
        r.rate * h * r.seconds / max(cores * r.seconds - o, 1e-9)
        for r, h, o in zip(figures.login, figures.hash_cpu, figures.login_others_cpu, strict=True)
    ]
    adjusted = statistics.median(adjusted_rounds)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Identity over HTTP: 1 worker on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}, {args.rounds}"
        f" rounds x {args.duration}s, {args.connections} connections ({args.login_clients} for"
        f" logins); medians, every round in brackets. Load average at the end: {load}."
    )
    print("-- asyncio keep-alive load generator --")
    print(_line("bare FastAPI GET /bench", figures.bare))
    print(_line("GET /v1/account (bearer)", figures.account))
    print(_line("POST /v1/sessions/refresh (chains)", figures.refresh))
    print(_line("POST /v1/sessions (password login)", figures.login))
    rows = []
    if figures.bare_wrk:
        bare_wrk, account_wrk = map(statistics.median, (figures.bare_wrk, figures.account_wrk))
        rows += [
            ("wrk: bare FastAPI GET /bench", f"{bare_wrk:.1f}/s"),
            ("wrk: GET /v1/account (bearer)", f"{account_wrk:.1f}/s"),
            ("wrk: GET /v1/account / bare", f"{account_wrk / bare_wrk:.3f}"),
        ]
    keycloak = f"Keycloak sizing {KEYCLOAK_REFRESH_PER_VCPU}/vCPU"
    hashing = f"{hash_s * 1000:.1f} ms ({hashes}) -> bound {bound:.1f} logins/s on {cores} core"
    rss = f"{figures.rss_idle:.1f} / {figures.rss_registered:.1f} / {figures.rss_peak:.1f} MiB"
    rows += [
        ("refresh / core", f"{refresh / cores:.0f}/s (>= {TARGET_REFRESH_PER_CORE}; {keycloak})"),
        ("refresh / bare app", f"{refresh / bare:.3f} (target >= {TARGET_BARE_RATIO})"),
        ("GET /v1/account / bare app", f"{account / bare:.3f} (target >= {TARGET_BARE_RATIO})"),
        ("one Argon2id hash (defaults)", hashing),
        ("logins / bound", f"{login / bound:.2f} (target >= {TARGET_LOGIN_BOUND_RATIO})"),
        ("one hash, CPU time", f"{hash_cpu * 1000:.1f} ms"),
        ("server CPU per login", f"{per_login * 1000:.1f} ms (hash and the rest of a login)"),
        ("CPU taken by others (server CPU)", f"{others:.0%} during the logins"),
        ("logins / load-adjusted bound", f"{adjusted:.2f} ({_ratios(adjusted_rounds)})"),
        (
            "RSS idle / registered / peak",
            f"{rss} (< {TARGET_RSS_MIB}; Keycloak {KEYCLOAK_POD_MIB})",
        ),
    ]
    print("-- ratios and targets (issue 4) --")
    for name, value in rows:
        print(f"{name + ':':<34} {value}")


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    bare = start_bare(data_dir)
    bastion = start_bastion(data_dir)
    try:
        await asyncio.sleep(1)
        figures = Figures(
            server_cores=len(os.sched_getaffinity(bastion.pid)), rss_idle=rss_mib(bastion.pid)
        )
        email = "bench@example.com"
        await create_user(bastion.port, data_dir, email)
        await create_user(bastion.port, data_dir, LOGIN_EMAIL)
        await asyncio.sleep(0.5)
        figures.rss_registered = rss_mib(bastion.pid)  # zxcvbn loaded, a password hashed
        async with peak_rss(bastion.pid) as peak:
            for _ in range(args.rounds):
                await one_round(args, bastion, bare, email, figures)
        figures.rss_peak = peak[0]
        report(figures, args)
    except SystemExit:
        errors = (data_dir / "bastion.err").read_text(errors="replace")
        print(f"server stderr (last 4000 characters):\n{errors[-4000:]}", file=sys.stderr)
        raise
    finally:
        bastion.stop()
        bare.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--login-clients", type=int, default=8, help="concurrent logins")
    args = parser.parse_args()
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})  # the load generator stays off the server's CPU
    else:
        print("warning: one CPU or no taskset: server and load share the CPU", file=sys.stderr)
    try:
        from uvloop import run as run_loop  # noqa: PLC0415 - optional: a faster load generator
    except ImportError:
        run_loop = asyncio.run  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        run_loop(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
