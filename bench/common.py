"""Shared helpers: isolated instance folders, subprocess servers, machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_database() -> str:
    """"sqlite" (the default: a file in each benchmark's instance directory) or "postgresql" (PostgreSQL + Redis,
    `refstage bench --database postgresql`)."""
    return os.environ.get("REFSTAGE_BENCH_DATABASE", "sqlite")


_EMPTIED: set[str] = set()


def refresh_statistics() -> None:
    """On PostgreSQL, ANALYZE the benchmark database before a measured step. This machine's server runs with
    autovacuum off, so without this its tables would have no planner statistics, a state no production install
    is in (docs/decisions/2026-12-02-postgresql-statistics.md). Nothing to do on SQLite."""
    if bench_database() != "postgresql":
        return
    from sqlalchemy import create_engine

    engine = create_engine(os.environ["REFSTAGE_BENCH_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


class AutoAnalyze(threading.Thread):
    """Autovacuum's analyze part, for a server that runs without it: every `naptime` seconds, ANALYZE each table
    changed by more than 50 rows + 10 % since its last analyze (PostgreSQL's defaults: autovacuum_naptime 60 s,
    autovacuum_analyze_threshold 50, autovacuum_analyze_scale_factor 0.1). Without it a table that grows from empty
    during a sync keeps the statistics of an empty table, and batch look-ups on it are planned as if it were."""

    def __init__(self, url: str, naptime: float = 60.0) -> None:
        super().__init__(name="bench-autoanalyze", daemon=True)
        self.url, self.naptime = url, naptime
        self.passes = 0

    def run(self) -> None:
        from sqlalchemy import create_engine

        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        while True:
            time.sleep(self.naptime)
            try:
                with engine.connect() as conn:
                    due = [name for (name,) in conn.exec_driver_sql(
                        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                        "WHERE s.schemaname = 'public' AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)")]
                    for name in due:
                        conn.exec_driver_sql(f'ANALYZE "{name}"')
                self.passes += 1
            except Exception:  # noqa: BLE001 - the schema is dropped between benchmarks; the next pass tries again
                continue


_AUTOANALYZE: list[AutoAnalyze] = []


def _production_path_env(instance: Path) -> dict[str, str]:
    """DATABASE_URL and REDIS_URL for a benchmark on PostgreSQL + Redis: the databases named by
    REFSTAGE_BENCH_DATABASE_URL and REFSTAGE_BENCH_REDIS_URL, emptied once per benchmark instance (so each starts
    as the SQLite runs do, from nothing). Separate variables from DATABASE_URL/REDIS_URL on purpose: a benchmark
    must never empty the database an instance runs on by accident."""
    url, redis_url = os.environ.get("REFSTAGE_BENCH_DATABASE_URL"), os.environ.get("REFSTAGE_BENCH_REDIS_URL")
    if not url or not redis_url or not url.startswith("postgresql"):
        raise RuntimeError("--database postgresql needs REFSTAGE_BENCH_DATABASE_URL (a PostgreSQL database the benchmarks "
                           "may empty, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/refstage_bench) and "
                           "REFSTAGE_BENCH_REDIS_URL (a Redis database they may flush, e.g. redis://127.0.0.1:6379/9)")
    if str(instance) not in _EMPTIED:
        import redis
        from sqlalchemy import create_engine

        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
        redis.Redis.from_url(redis_url).flushdb()
        _EMPTIED.add(str(instance))
        if not _AUTOANALYZE:  # one for the whole run, as the server's own autovacuum would be
            _AUTOANALYZE.append(AutoAnalyze(url))
            _AUTOANALYZE[0].start()
    return {"DATABASE_URL": url, "REDIS_URL": redis_url}


def bench_env(instance: Path, **extra: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    if bench_database() == "postgresql":
        env.update(_production_path_env(instance))
    env.update({
        "REFSTAGE_ENV": "bench", "REFSTAGE_INSTANCE_DIR": str(instance), "SECRET_KEY": "b" * 48,
        "REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS": "1",  # the emulated orgs listen on loopback
        "REFSTAGE_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "REFSTAGE_BENCH": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.update(extra)
    return env


@contextlib.contextmanager
def instance_dir(prefix: str):
    keep = os.environ.get("REFSTAGE_BENCH_KEEP")  # keep logs and databases for a look afterwards
    if keep:
        path = Path(tempfile.mkdtemp(prefix=f"refstage-bench-{prefix}-", dir=keep))
        print(f"  (keeping {path})", flush=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"refstage-bench-{prefix}-") as tmp:
        yield Path(tmp)


class Server(str):
    """A server's base URL that also knows the server's process id."""

    pid: int


def _stat(entry: Path) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; utime and stime are fields 11 and 12."""
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far."""
    return _cpu(_stat(Path(f"/proc/{pid}")))


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children, e.g. a gunicorn master and its workers."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(entry)
            if int(entry.name) == pid or int(fields[1]) == pid:
                total += _cpu(fields)
    return total


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], *, workers: int = 2, threads: int = 4, probe: str = "/hello",
             cpus: str | None = None):
    """cpus: a taskset CPU list ("1") the server (master and the workers it forks) is pinned to."""
    port = free_port()
    gunicorn_bin = str(Path(sys.executable).with_name("gunicorn"))
    pin = ["taskset", "-c", cpus] if cpus else []
    # Its stderr goes to a file, not a pipe: a pipe nobody reads during the run would stall the server once full.
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([*pin, gunicorn_bin, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
                             "--worker-class", "gthread", "--keep-alive", "5", "--log-level", "warning", app],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
    base = Server(f"http://127.0.0.1:{port}")
    base.pid = proc.pid
    try:
        # Generous: on a machine shared with other work, starting the workers has taken over 30 s.
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(base + probe, timeout=2).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                errors.seek(0)
                raise RuntimeError(f"gunicorn {app} did not answer {probe}: {errors.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        errors.close()


@contextlib.contextmanager
def emulator_process(workdir: Path, crm: str, *args: str, probe: str = "/_emulator"):
    """An emulator (`refstage emulator <crm>`) in its own process, so its CPU and memory are not ours. Yields
    (base URL, CA file, process id) once it answers `probe`; its output goes to <workdir>/emulator-<crm>.log."""
    port = free_port()
    cert_dir = workdir / f"certs-{crm}"
    log_path = workdir / f"emulator-{crm}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "refstage.cli", "emulator", crm, "--port", str(port),
                                 "--cert-dir", str(cert_dir), *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        base = f"https://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            ca = cert_dir / "ca.pem"
            while True:
                if ca.exists():
                    try:
                        if requests.get(base + probe, verify=str(ca), timeout=2).ok:
                            break
                    except requests.RequestException:
                        pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {crm} emulator did not start; see {log_path}")
                time.sleep(0.2)
            yield base, str(ca), proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def python_speed_ms(rounds: int = 5) -> float:
    """A fixed pure-Python workload (integer arithmetic, dict and list use), best of `rounds`, in ms. The same
    kind of machine has run at different speeds on different days: this says how fast this one was, so that
    figures from different runs can be compared. Lower is faster."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        table: dict[int, int] = {}
        items: list[int] = []
        for i in range(300_000):
            table[i & 1023] = table.get(i & 1023, 0) + i
            items.append(i * 7 % 13)
        sum(items)
        best = min(best, (time.perf_counter() - started) * 1000)
    return round(best, 1)


def machine() -> dict[str, str]:
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "python": platform.python_version(),
            "os": platform.platform(), "python_speed_ms": str(python_speed_ms())}
