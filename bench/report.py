"""Turn bench/results/*.json into docs/benchmarks.md: every figure, its target, the machine, the command."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import ROOT

# letter -> list of (label, result key, comparison, target, unit)
TARGETS: dict[str, list[tuple[str, str, str, float | None, str]]] = {
    "a": [("wall time", "wall_s", "<=", 60, "s"), ("Salesforce API calls", "api_calls", "<=", 30, ""),
          ("peak RSS", "peak_rss_mb", "<=", 300, "MB"), ("speed-up vs naive", "speedup", ">=", 10, "×"),
          ("API-call reduction vs naive", "api_reduction", ">=", 1000, "×"),
          ("naive wall time", "naive_wall_s", None, None, "s"), ("naive API calls", "naive_api_calls", None, None, ""),
          ("our process's CPU (issue 22: half of 64–95 s)", "cpu_s", "<=", 30, "s"),
          ("our CPU: user time", "cpu_user_s", None, None, "s"), ("our CPU: system time", "cpu_system_s", None, None, "s"),
          ("our time waiting (wall − CPU)", "waiting_s", None, None, "s"),
          ("the org's processing (emulator CPU)", "emulator_cpu_s", None, None, "s"),
          ("speed-up vs competent (query_all + Collections of 200)", "speedup_vs_competent", None, None, "×"),
          ("API-call reduction vs competent", "api_reduction_vs_competent", None, None, "×"),
          ("competent wall time", "competent_wall_s", None, None, "s"), ("competent API calls", "competent_api_calls", None, None, ""),
          ("competent: its process's CPU", "competent_cpu_s", None, None, "s"),
          ("competent: its time waiting (wall − CPU)", "competent_waiting_s", None, None, "s"),
          ("competent: the org's processing", "competent_org_cpu_s", None, None, "s")],
    "b": [("API calls", "api_calls", "<=", 2, ""), ("our own time", "own_time_s", "<=", 0.3, "s")],
    "c": [("wall time", "wall_s", "<=", 30, "s"), ("API calls", "api_calls", "<=", 10, "")],
    "d": [("Salesforce Outbound Message: p50", "p50_s", None, None, "s"),
          ("Salesforce Outbound Message: p95", "p95_s", "<=", 5, "s"),
          ("Salesforce Outbound Message: max", "max_s", None, None, "s"),
          ("Pipedrive webhook: p50", "pipedrive_p50_s", None, None, "s"),
          ("Pipedrive webhook: p95", "pipedrive_p95_s", "<=", 5, "s"),
          ("Pipedrive webhook: max", "pipedrive_max_s", None, None, "s")],
    "e": [("landing page / hello throughput", "landing_ratio", ">=", 0.7, "×"),
          ("form submission / hello throughput (target retired 2026-12-02, docs/performance.md)", "form_ratio", None, None, "×"),
          ("form post / bare form post throughput (wrk)", "form_over_bare_form", ">=", 0.6, "×"),
          ("landing page / hello throughput (wrk)", "wrk_landing_over_hello", None, None, "×"),
          ("landing p99 at 300 req/s", "landing_p99_ms_at_300", "<", 25, "ms"),
          ("form p99 at 300 req/s", "form_p99_ms_at_300", "<", 25, "ms"),
          ("hello req/s", "hello_rps", None, None, ""), ("landing req/s", "landing_rps", None, None, ""),
          ("form req/s", "form_rps", None, None, ""), ("hello p99 at 300 req/s", "hello_p99_ms_at_300", None, None, "ms"),
          ("server CPU per hello", "hello_server_cpu_us", None, None, "µs"),
          ("server CPU per landing page", "landing_server_cpu_us", None, None, "µs"),
          ("server CPU per form post", "form_server_cpu_us", None, None, "µs")],
    "f": [("cost growth, smallest → largest size (wall time per change, ratio)", "growth_ratio", "<=", 1.2, "×")],
    # issue 21: a decision reaches the CRM in seconds
    "g": [("p50", "p50_s", None, None, "s"), ("p95", "p95_s", "<=", 15, "s"), ("max", "max_s", None, None, "s")],
}


# (a)'s figures that rest on the naive loop's projection when it was stopped early (naive_projected).
PARTLY_PROJECTED = {"speedup", "api_reduction", "naive_wall_s", "naive_api_calls"}


def _notes(key: str, result: dict) -> list[str]:
    """What a reader needs to judge the figures: how each was obtained, and why a target is missed. Only
    figures from the result itself appear here."""
    notes: list[str] = []
    if key == "a":
        if result.get("naive_projected"):
            notes.append(
                f"The naive baseline's query_all and its first {_fmt(result.get('naive_updated'))} of "
                f"{_fmt(result.get('naive_updates_due'))} REST updates were measured "
                f"({_fmt(result.get('naive_measured_wall_s'))} s, {_fmt(result.get('naive_update_s_each'))} s per update); "
                "the loop was then stopped and the remaining updates projected at that measured rate (wall time) and at "
                "one API call each (exactly what the loop does). Naive wall time, speed-up and API-call reduction are "
                "therefore partly projected.")
        if "competent_wall_s" not in result:
            notes.append("Competent baseline: not part of this run (measured by runs of (a) since 2026-12-02).")
        notes.append("API calls are the emulated org's own counter (every authenticated /services/data call, Bulk "
                     "polls and result downloads included), reset just before each side runs.")
        notes.append("Scenario: the referrals had been running — an earlier, unmeasured sync (`setup_sync_*`) read the "
                     "org, mirrored the referrals and set Opportunity.Referral__c on their deals, as in any org using "
                     "Refstage. Then every opportunity changed through Bulk API mass updates (the referred ones closed "
                     "won, all others touched by a clean-up), and the measured sync ran. Between daily reconciles "
                     "Refstage reads only records that carry a Referral__c (docs/decisions/2026-11-22-linked-only-reads.md), "
                     "so it pulls the referred 10 % (`pulled`); the naive integration reads every changed opportunity.")
        emulator = (f" The emulator's process used {_fmt(result['emulator_cpu_s'])} s of CPU during our sync."
                    if "emulator_cpu_s" in result else "")
        if "emulator_cpu_s" in result and "cpu_s" in result:
            both = result["cpu_s"] + result["emulator_cpu_s"]
            emulator += (f" Together the two processes used {_fmt(both)} s of CPU; on 2 cores no schedule of that work "
                         f"could take less than {_fmt(both / 2)} s of wall time (docs/performance.md).")
        notes.append("Wall time includes the emulator's own Bulk processing (a separate process on the same 2 cores): "
                     "our sync waits for the Bulk query and two Bulk ingest jobs (Referral__c upserts, then "
                     "Referral_Reward__c upserts, spooled to disk and sent in one job each; the referrals' job is sent "
                     "before the rewards are read and spooled, so the emulator works on it meanwhile). How long the "
                     "reward job takes is the emulator's row rate, not ours; `cpu_s` is our process's CPU time."
                     + emulator + " Qualifying the changes (record states, referrals, 200,000 rewards, audit entries, "
                     "write-back queue) is the largest part of our own time; peak RSS is measured as VmHWM of "
                     "the measuring process alone.")
    if key == "b":
        notes.append("Measured: the third of three syncs. The first reads the whole org (a reconcile); its write-back "
                     "sets Opportunity.Referral__c on the linked deals, which bumps their SystemModstamp, so the second "
                     "reads those echoes of our own writes once (`echo_sync_*`); the third is the quiet steady state. "
                     "The org's records were "
                     "last written an hour (of its own clock) before the first sync: a quiet org. A sync re-reads the 10 "
                     "minutes before its watermark, and the watermark follows the org's clock (its Date header) when "
                     "that is later than the newest record, so a quiet org is not re-read. `own_time_s` is the CPU "
                     "time of the measured process during run_sync (process start and imports, including the CRM adapters' "
                     "one-time import, excluded, as in a running worker); API calls "
                     "are one COUNT() per synced object (Lead and Opportunity), as the count is 0.")
    if key == "c":
        notes.append("Calls: COUNT(), Bulk query (create, polls, one result page), Bulk update of "
                     "Contact.Referral_Code__c/Referral_Link__c (create, upload, close, polls); result files are "
                     "downloaded only when the job reports a failure.")
    if key == "d":
        queue = result.get("queue", "SQLite")
        notes.append(f"A worker process (`refstage worker -w 2`, {queue} queue) and gunicorn run the real path; before each "
                     f"change the worker sat idle for a random {result.get('idle_before_each_s', '0-8')} s, as between "
                     "reps' edits. An idle worker polls the SQLite queue at least every second (on Redis it is woken at "
                     "once), so that second is the most a quiet spell adds.")
        notes.append(f"Salesforce ({_fmt(result.get('samples'))} changes): a rep closes an opportunity over the org's REST "
                     "API; its Outbound Message reaches our endpoint; timed until the referral's two rewards are rows of "
                     "Referral_Reward__c in the org.")
        if "pipedrive_samples" not in result:
            notes.append("Pipedrive webhooks: not part of this run (measured by runs of (d) since 2026-12-02).")
        else:
            notes.append(f"Pipedrive ({_fmt(result['pipedrive_samples'])} changes): a user marks a deal won through the "
                         "company's API (`PATCH /api/v2/deals/<id>` status won); the company's v2.0 webhook reaches our "
                         "receiver, the worker re-reads the deal and writes the rewards back; timed until the deal's "
                         "\"Refstage reward status\" field names both rewards, read over the company's API every "
                         f"{_fmt(result.get('pipedrive_poll_interval_s'))} s (bench/push_latency.py).")
    if key == "e":
        notes.append("Both apps run under the same gunicorn settings (2 workers × 4 threads, gthread) and the same "
                     "closed-loop load generator (16 connections) on the same 2 cores. The landing page is served "
                     "from a per-process cache of the code's page (5 s TTL; only the CSP nonce and the two form tokens "
                     "are made per view). A form post validates, checks its signed token, counts the per-IP and per-code "
                     "rate limits and stores the submission in one committed SQLite write before answering 303; the "
                     "worker turns it into a referral (docs/decisions/2026-11-22-public-pages-load.md). What separates "
                     "it from hello is Flask's own request handling plus that write, not a query per request.")
        if result.get("landing_ratio_rounds"):
            notes.append(f"Throughput was measured in {result.get('rounds')} rounds of three closed-loop windows of "
                         f"{_fmt(result['duration_s'] / result['rounds'])} s (hello, landing page, form post, the order "
                         f"rotating each round; both servers up throughout), so that a change in the machine's speed "
                         f"during the run weighs on all three alike. The ratios above pool the rounds. Per round, "
                         f"landing page / hello: {', '.join(_fmt(x) for x in result['landing_ratio_rounds'])}; "
                         f"form post / hello: {', '.join(_fmt(x) for x in result['form_ratio_rounds'])}.")
        if result.get("hello_server_cpu_us") and result.get("form_server_cpu_us"):
            need = result["hello_server_cpu_us"] / 0.7
            notes.append(f"Server CPU per request (gunicorn master and workers, user + system, during the closed loops): "
                         f"hello {_fmt(result['hello_server_cpu_us'])} µs, landing page "
                         f"{_fmt(result['landing_server_cpu_us'])} µs, form post {_fmt(result['form_server_cpu_us'])} µs. "
                         f"With the server CPU-bound, a 0.7 ratio needs a request to cost at most about "
                         f"{_fmt(need)} µs, gunicorn's own share included.")
    if key == "e" and result.get("wrk"):
        w = result["wrk"]
        cpu = {k: _fmt(v["server_cpu_us_per_request"]) for k, v in w["totals"].items()}
        notes.append(f"wrk (bench/wrk_pages.py): load generated by wrk pinned to core {w['load_core']}, every server pinned to "
                     f"core {w['server_core']}, {w['rounds']} rounds of alternating {w['window_s']}-second windows; the form "
                     f"post does the token round trip (bench/wrk/form.lua). Per round, form post / bare form post: "
                     f"{', '.join(_fmt(x) for x in w['form_over_bare_form_rounds'])}. Server CPU per request: "
                     + ", ".join(f"{k} {v} µs" for k, v in cpu.items()) + ". Load average at the end: "
                     f"{', '.join(_fmt(x) for x in w['load_average'])}.")
    if key == "f":
        sizes = result.get("sizes") or []
        steps = [f"{_fmt(a['opportunities'])}→{_fmt(b['opportunities'])} opportunities: {_fmt(b['wall_s_per_change_ms'] / a['wall_s_per_change_ms'])}×"
                 for a, b in zip(sizes, sizes[1:]) if a.get("wall_s_per_change_ms")]
        if steps:
            notes.append("Growth of the wall time per change between consecutive sizes (the 10k figure carries fixed "
                         "costs, so 10k→1M alone flatters): " + "; ".join(steps) + ".")
        notes.append("The naive baseline runs only at the smallest size (at larger sizes its one-REST-call-per-referral "
                     "loop takes far longer than the benchmark; (a) reports it at its size). A size that (a) measured "
                     "in the same run is reused rather than measured twice (`shared_with_a`). Growth ratio ≤ 1 means "
                     "the cost per change does not grow with the org.")
    if key == "g":
        notes.append(f"{_fmt(result.get('samples'))} decisions through the JSON API (`POST /api/v1/rewards/<id>/approve`, "
                     "then `/issue` with a payout reference: mark paid; every fifth reward `/reject`ed instead"
                     + _decision_counts(result.get("decisions")) + "), each on a reward a review policy held for a reviewer; timed from the request to the org's Referral_Reward__c showing the new status (and "
                     "Referral__c showing `rewarded` after mark paid), polled over the org's REST API every "
                     f"{_fmt(result.get('poll_interval_s'))} s. A worker process (`refstage worker -w 2`, "
                     f"{result.get('queue', 'SQLite')} queue, no periodic sync) and gunicorn run the real path; the worker sat idle for a random "
                     f"{result.get('idle_before_each_s', '0-8')} s before each decision. The scheduled sync plays no part: "
                     "each decision queues its own write-back.")
        if result.get("load_average"):
            start = result.get("load_average_at_start")
            notes.append(("Load average (1, 5, 15 min) at the start of the run: "
                          f"{', '.join(_fmt(x) for x in start)}; at its end: " if start else
                          "Load average (1, 5, 15 min) at the end of the run: ")
                         + f"{', '.join(_fmt(x) for x in result['load_average'])} on 2 cores"
                         + (" — taken under load from other work on the machine, so the figures are conservative."
                            if (start or result["load_average"])[0] >= 2 else "."))  # 2 cores busy before we began
    return notes


def _decision_counts(counts: dict | None) -> str:
    if not counts:
        return ""
    return (f": {_fmt(counts.get('approve', 0))} approved, {_fmt(counts.get('mark_paid', 0))} marked paid, "
            f"{_fmt(counts.get('reject', 0))} rejected")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(value, op, target) -> str:
    if op is None or value is None:
        return ""
    ok = {"<=": value <= target, "<": value < target, ">=": value >= target}[op]
    return "met" if ok else "**missed**"


def _load_runs(suffix: str) -> dict:
    runs = {}
    for name in ("quick", "full"):  # a full run's figure replaces a quick one
        f = ROOT / "bench" / "results" / f"{name}{suffix}.json"
        if f.exists():
            for key, value in json.loads(f.read_text()).items():
                runs[key] = {**value, "mode": name}
    return runs


DATABASES = (("", "SQLite"), ("-postgresql", "PostgreSQL + Redis"))


def write_report(path: Path) -> None:
    runs = {name: _load_runs(suffix) for suffix, name in DATABASES}
    projected = ", ".join(label for label, k, *_ in TARGETS["a"] if k in PARTLY_PROJECTED)
    lines = ["# Benchmarks", "",
             "Written by `refstage bench` (bench/run.py) from the figures of its last runs (bench/results/*.json); "
             "nothing here is typed by hand. Targets come from issue 8 ((g)'s from issue 21).",
             "",
             "Commands: `refstage bench` (full) or `refstage bench --quick` (smaller sizes, CI-sized time) on SQLite, the "
             "default; `refstage bench --database postgresql` on PostgreSQL + Redis, the documented way to scale, with "
             "REFSTAGE_BENCH_DATABASE_URL (a PostgreSQL database the benchmarks may empty) and REFSTAGE_BENCH_REDIS_URL "
             "(a Redis database they may flush). `--only=a,d` runs some of them. Each table has one value column per "
             "database; each section names, per database, the command, the mode (a full run's figures replace a quick "
             "run's), the date and the machine that produced them. Compare the two columns with care when their modes "
             "or dates differ.",
             "",
             "PostgreSQL statistics: this machine's PostgreSQL server runs with autovacuum off, so on PostgreSQL the "
             "benchmarks do its analyze part themselves (`bench.common.AutoAnalyze`, PostgreSQL's default thresholds, "
             "and an ANALYZE before each measured step), as a production server's autovacuum would; runs before "
             "2026-12-02 08:00 UTC did not, and their batch look-ups were planned without statistics "
             "(docs/decisions/2026-12-02-postgresql-statistics.md). The server's own CPU is not in our figures.",
             "",
             "The speed check (`bench.common.python_speed_ms`: a fixed pure-Python loop, best of 5, lower is faster) is a "
             "rough guide to how fast the machine ran. Machines of the same kind here run at different speeds at different "
             "times, and the check, taken once before the run, does not always catch a slow spell; (a)'s `seed_seconds` "
             "(the same seeding work every run) is a second gauge. Compare durations only within one run; runs from before "
             "2026-11-23 have no speed check.",
             "",
             "Projected figures: a figure labelled (projected) was not measured in full, and its note says how it was "
             f"projected. Only (a)'s naive baseline can be: {projected}, when its one-call-per-referral loop was stopped "
             "at its time limit. Everything else, the competent baseline included, is measured.", ""]
    from bench.run import BENCHMARKS

    for key, (_, title) in BENCHMARKS.items():
        lines += [f"## ({key}) {title}", ""]
        present = [(name, db_runs[key]) for name, db_runs in runs.items() if key in db_runs]
        if not present:
            lines += ["Not run yet.", ""]
            continue
        lines += _section(key, present)
    path.write_text("\n".join(lines))


def _section(key: str, present: list[tuple[str, dict]]) -> list[str]:
    """One benchmark: per database, where its figures come from; then one table with a value column per database,
    the notes (a database's note is shown once when both say the same) and every figure."""
    lines: list[str] = []
    for name, run in present:
        m = run.get("machine", {})
        lines.append(f"- {name}: `{run.get('command')}` ({run.get('mode')} mode), {run.get('at')}, took "
                     f"{run.get('seconds', 0):.0f} s; machine {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory')}, "
                     f"Python {m.get('python')}" + (f", speed check {m['python_speed_ms']} ms" if m.get("python_speed_ms") else ""))
    lines.append("")
    for name, run in present:
        if "error" in run:
            lines += [f"The {name} run failed:", "", "```", run["error"], "```", ""]
    results = [(name, run["result"]) for name, run in present if "error" not in run]
    if not results:
        return lines
    lines += ["| figure | target | " + "".join(f"{name} |  | " for name, _ in results).rstrip(),
              "|---|---|" + "---|---|" * len(results)]
    for label, k, op, target, unit in TARGETS.get(key, []):
        if not any(k in result for _, result in results):
            continue
        cells = []
        for _, result in results:
            value = result.get(k)
            shown = "" if value is None else f"{_fmt(value)} {unit}".strip()
            if shown and key == "a" and result.get("naive_projected") and k in PARTLY_PROJECTED:
                shown += " (projected)"
            cells += [shown, _verdict(value, op, target)]
        tgt = f"{op} {_fmt(target)} {unit}".strip() if op else ""
        lines.append(f"| {label} | {tgt} | " + " | ".join(cells) + " |")
    if key == "f":  # issue 22: growth per change between consecutive sizes, as rows of their own
        steps = [{f"{_fmt(a['opportunities'])}→{_fmt(b['opportunities'])}": b["wall_s_per_change_ms"] / a["wall_s_per_change_ms"]
                  for a, b in zip(result.get("sizes") or [], (result.get("sizes") or [])[1:])} for _, result in results]
        for step in dict.fromkeys(k for by_step in steps for k in by_step):
            lines.append(f"| cost growth {step} opportunities (wall time per change, ratio) |  | "
                         + " | ".join(f"{_fmt(by_step[step])} × | " if step in by_step else " | " for by_step in steps) + " |")
    if key == "f":
        for name, result in results:
            if result.get("sizes"):
                lines += ["", f"{name}:", "", "| opportunities | changes | wall time | per change | growth per change "
                          "from the previous size | API calls | peak RSS | naive wall time | naive API calls |",
                          "|---|---|---|---|---|---|---|---|---|"]
                previous = None
                for r in result["sizes"]:
                    growth = (f"{_fmt(r['wall_s_per_change_ms'] / previous)} ×" if previous else "")
                    previous = r["wall_s_per_change_ms"]
                    lines.append(f"| {_fmt(r['opportunities'])} | {_fmt(r['changes'])} | {_fmt(r['wall_s'])} s | "
                                 f"{_fmt(r['wall_s_per_change_ms'])} ms | {growth} | {_fmt(r['api_calls'])} | "
                                 f"{_fmt(r['peak_rss_mb'])} MB | "
                                 f"{_fmt(r['naive_wall_s']) + ' s' if 'naive_wall_s' in r else 'not run'} | "
                                 f"{_fmt(r['naive_api_calls']) if 'naive_api_calls' in r else 'not run'} |")
    shown_notes: list[str] = []
    for name, result in results:
        notes = [n for n in _notes(key, result) if n not in shown_notes]
        if notes:
            lines += ["", f"Notes ({name}):" if len(results) > 1 else "Notes:", ""] + [f"- {n}" for n in notes]
            shown_notes += notes
    for name, result in results:
        extra = {k: v for k, v in result.items() if k not in {t[1] for t in TARGETS.get(key, [])}}
        if extra:
            lines += ["", f"<details><summary>all figures ({name})</summary>", "", "```json",
                      json.dumps(extra, indent=1, default=str), "```", "", "</details>"]
    lines.append("")
    return lines
