"""A/B of the form write's and the sync's storage optimisations, each on its own path, on and off in
alternating runs (a fresh process per run; issue 22, docs/performance.md).

    python -m bench.ab_sqlite_paths raw [rounds]       # form write on the DBAPI cursor vs through a Session
    python -m bench.ab_sqlite_paths spin [rounds]      # SQLite: BEGIN IMMEDIATE retried every ≤1 ms vs busy handler
    python -m bench.ab_sqlite_paths checkpoint [rounds]  # SQLite: background WAL checkpoints vs none
    python -m bench.ab_sqlite_paths stall              # SQLite: the checkpoint a commit pays without them
    python -m bench.ab_sqlite_paths group [rounds]     # group commit (4 threads, one process) vs a commit per post
    python -m bench.ab_sqlite_paths hint [rounds]      # SQLite: "+tenant_id" in batch reads by id (the sync's)
    python -m bench.ab_sqlite_paths nonce [rounds]     # pooled random bytes (removed) vs secrets.token_urlsafe
    DATABASE_URL=postgresql+psycopg://…/own_db python -m bench.ab_sqlite_paths raw   # the same on PostgreSQL

Reported per run: our process's CPU per post (all threads), post latency percentiles, load average."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from bench.common import python_speed_ms

POSTS = {"raw": 3000, "spin": 1500, "checkpoint": 8000, "group": 3000}


def _off(which: str) -> None:
    """Switch one optimisation off (before any engine or statement exists)."""
    from refstage.adapters.db import database, hot, unit_of_work

    if which == "raw":
        unit_of_work.UnitOfWork.form_write = staticmethod(_session_form_write)
    elif which == "spin":
        hot._begin_immediate = lambda cursor: cursor.execute("BEGIN IMMEDIATE")  # busy_timeout stays 30 s
    elif which == "checkpoint":
        database.wal_checkpointer = lambda path, engine: None
    elif which == "hint":
        from sqlalchemy.ext.compiler import compiles

        from refstage.adapters.db import repositories as r
        compiles(r._NotAnIndexKey, "sqlite")(r._plain_column)


@contextlib.contextmanager
def _session_form_write(session_factory: Any):
    """The same statements and transaction through an ORM Session (SQLAlchemy's execution layer)."""
    class Write:
        def bump_counters(self, counters):
            stmt = _statement(session.bind.dialect.name, "counter")
            return {key: int(session.execute(stmt, {"key": key, "n": n, "expires_at": exp}).scalar_one())
                    for key, n, exp in counters}

        def insert_intake(self, rows):
            if rows:
                session.execute(_statement(session.bind.dialect.name, "intake"), rows)

    with session_factory() as session:
        yield Write()
        session.commit()


@functools.cache
def _statement(dialect_name: str, which: str) -> Any:
    from refstage.adapters.db.hot import statement
    return statement(dialect_name, which)[0]


_pool = threading.local()


def _pooled_token(n: int) -> str:
    """The removed web/randomness.py: os.urandom fetched 4 KiB at a time per thread, handed out in slices."""
    buf, pos = getattr(_pool, "buf", b""), getattr(_pool, "pos", 0)
    if getattr(_pool, "pid", None) != os.getpid() or pos + n > len(buf):
        buf, pos = os.urandom(4096), 0
        _pool.buf, _pool.pid = buf, os.getpid()
    _pool.pos = pos + n
    return base64.urlsafe_b64encode(buf[pos:pos + n]).rstrip(b"=").decode("ascii")


def _runtime():
    from dataclasses import replace

    from refstage.adapters.db import models as m
    from refstage.adapters.db.database import make_engine
    from refstage.adapters.db.migrate import upgrade_engine
    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage.services import tenants

    tmp = tempfile.mkdtemp()
    settings = load_settings({"REFSTAGE_INSTANCE_DIR": tmp})
    settings = replace(settings, database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/ab.db")
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    if engine.dialect.name == "postgresql":  # a database of its own, emptied first
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(t.name for t in m.Base.metadata.sorted_tables) + " CASCADE")
    rt = build_runtime(settings, engine=engine)
    tenant = tenants.create_tenant(rt, "A/B", f"ab-{uuid.uuid4().hex[:8]}")
    return settings, rt, tenant.id, str(uuid.uuid4())


def _post_loop(rt, tenant_id: str, program_id: str, n: int, threads: int, grouped: bool, tag: str) -> list[float]:
    """n posts (2 rate-limit counters + one intake row each) from `threads` threads; each post's latency."""
    from refstage.services import intake, protection

    writer = intake.IntakeWriter(rt)
    limits = [protection.Limit("referral_ip", 10**9, 60), protection.Limit("referral_code", 10**9, 60)]
    latencies: list[float] = []

    def post(i: int) -> None:
        sub = intake.Submission(tenant_id, program_id, "advocate", "CODE2345", {"name": "F", "email": f"f{i}@x.test"},
                                "1", token=f"{tag}-{i}", client=f"10.0.{i % 200}.{i % 7}")
        hits = [(limits[0], sub.client), (limits[1], sub.code)]
        t = time.perf_counter()
        if grouped:
            writer.submit(sub, hits)
        else:
            intake._store(rt, [intake._Slot(sub, hits, rt.now())])
        latencies.append(time.perf_counter() - t)

    def run(first: int) -> None:
        for i in range(first, n, threads):
            post(i)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies


def _summary(latencies: list[float], cpu: float, wall: float) -> dict[str, Any]:
    q = statistics.quantiles(latencies, n=1000)
    return {"posts": len(latencies), "cpu_us_per_post": round(cpu / len(latencies) * 1e6), "per_s": round(len(latencies) / wall),
            "p50_ms": round(q[499] * 1e3, 2), "p99_ms": round(q[989] * 1e3, 2), "p999_ms": round(q[998] * 1e3, 2),
            "max_ms": round(max(latencies) * 1e3, 1), "over_50ms": sum(x > 0.05 for x in latencies)}


def one(which: str, variant: str) -> dict[str, Any]:
    if variant == "off":
        _off(which)
    if which == "hint":  # batch reads by id (the sync's get_many) of 20,000 referrals in a tenant of 100,000
        import random

        from bench.fixtures import PROGRAM, linked_referrals
        from refstage.domain.audit import Actor
        from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
        from refstage.services import programs
        _, rt, tenant_id, _ = _runtime()
        conn = CrmConnection(id=rt.new_id(), tenant_id=tenant_id, kind=CrmKind.SALESFORCE, name="ab", status=ConnectionStatus.ACTIVE)
        with rt.uow(tenant_id) as uow:
            uow.connections.add(conn)
            uow.commit()
        program = programs.create_program(rt, tenant_id, {**PROGRAM, "connection_id": conn.id}, Actor.system("ab"))
        ids = random.Random(1).sample(linked_referrals(rt, tenant_id, conn.id, program.id, [f"006{i:012d}" for i in range(100_000)]), 20_000)
        c0 = time.process_time()
        with rt.uow(tenant_id, readonly=True) as uow:
            assert len(uow.referrals.get_many(ids)) == len(ids)
        return {"cpu_ms": round((time.process_time() - c0) * 1e3)}
    if which == "nonce":
        import secrets
        import timeit
        call = _pooled_token if variant == "on" else secrets.token_urlsafe
        return {"ns_per_call": round(min(timeit.repeat(lambda: call(16), number=100_000, repeat=5)) / 100_000 * 1e9)}
    settings, rt, tenant_id, program_id = _runtime()
    # PostgreSQL syncs every commit: a fifth of the posts keeps a run to about a minute on a busy disk.
    n, threads = POSTS[which] // (5 if rt.session_factory.kw["bind"].dialect.name == "postgresql" else 1), 4 if which == "group" else 1
    _post_loop(rt, tenant_id, program_id, 200, threads, True, "warm")
    if which == "spin":  # two processes (sync gunicorn workers) writing the same file at once
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        out = ctx.Queue()

        def child(k: int) -> None:
            from refstage.bootstrap import build_runtime
            crt = build_runtime(settings)
            c0, w0 = time.process_time(), time.perf_counter()
            lat = _post_loop(crt, tenant_id, program_id, n, 1, True, f"p{k}")
            out.put((lat, time.process_time() - c0, time.perf_counter() - w0))

        procs = [ctx.Process(target=child, args=(k,)) for k in range(2)]
        for p in procs:
            p.start()
        got = [out.get() for _ in procs]
        for p in procs:
            p.join()
        return _summary([x for lat, _, _ in got for x in lat], sum(c for _, c, _ in got), max(w for _, _, w in got))
    c0, w0 = time.process_time(), time.perf_counter()
    lat = _post_loop(rt, tenant_id, program_id, n, threads, which != "group" or variant == "on", "run")
    return _summary(lat, time.process_time() - c0, time.perf_counter() - w0)


def stall() -> None:
    """What the commit that reaches wal_autocheckpoint (10,000 pages) pays when nothing was copied before it."""
    import sqlite3
    path = f"{tempfile.mkdtemp()}/stall.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT)")
    while os.path.getsize(path + "-wal") < 10_000 * (4096 + 24):  # pages and their frame headers
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(os.urandom(16).hex(), "x" * 300) for _ in range(20)])
    t = time.perf_counter()
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    print(f"checkpoint of 10,000 pages: {(time.perf_counter() - t) * 1e3:.0f} ms, load {os.getloadavg()[0]:.1f}")


def main(which: str, rounds: int) -> None:
    print(f"{which}: speed check {python_speed_ms()} ms, database {'postgresql' if os.environ.get('DATABASE_URL') else 'sqlite'}")
    results: dict[str, list[dict]] = {"on": [], "off": []}
    for r in range(rounds):
        for variant in (("on", "off") if r % 2 == 0 else ("off", "on")):
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, "-m", "bench.ab_sqlite_paths", "--one", which, variant],
                                  capture_output=True, text=True, check=True)
            row = {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": round(load, 1)}
            results[variant].append(row)
            print(f"round {r + 1} {variant:3s} {row}", flush=True)
    for key in results["on"][0]:
        if key not in ("posts", "load"):
            on, off = (statistics.median(x[key] for x in results[v]) for v in ("on", "off"))
            print(f"median {key}: on {on}, off {off}, on/off {on / off:.2f}")


if __name__ == "__main__":
    if sys.argv[1] == "stall":
        stall()
    elif sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2], sys.argv[3])))
    else:
        main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
