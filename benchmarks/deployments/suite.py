"""Deployments: what serving a deployment costs and how fast a rollback reaches the clients.

Real ``shipyard serve --deployment NAME`` processes on 127.0.0.1, driven by the serving suite's load generator
(``serving/loadgen.py``) with single-row ``/predict`` requests. Three measurements: the latency the routing adds
(the same model on the same server, by its model name and by the deployment's name, in alternating rounds), the
primary's latency with and without a shadow attached, and the time from a rollback's API call returning to the
first answer by the old version, seen by clients polling continuously. No other open-source model server has these
features, so there is no peer: the figures are printed next to the aims.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from common import Context, WorkerError, fmt_seconds, run_worker

from serving import selfcheck
from serving._shared import MODEL_NAME, digest, median
from serving.servers import Server, ServerFailed, free_port
from serving.suite import combine, load_round, shipyard_env, shipyard_src

NAME = "deployments"
TITLE = "Deployments: routing overhead, shadow cost and rollback time of shipyard serve --deployment"

HERE = Path(__file__).resolve().parent
CONTROL = HERE / "control.py"

ROUTED = "bench-api"
ROLLED = "bench-rollback"

# Rows of (1) and (2): `rounds` load-generator runs per side, alternating, each `warmup_s` then `duration_s`.
FULL = {"warmup_s": 1.0, "duration_s": 4.0, "rounds": 5, "clients": [1, 8], "shadow_clients": 8,
        "rollbacks": 10, "rollback_workers": [1, 2], "per_worker": 2}
QUICK = {"warmup_s": 0.5, "duration_s": 2.0, "rounds": 1, "clients": [1, 8], "shadow_clients": 8,
         "rollbacks": 3, "rollback_workers": [1, 2], "per_worker": 2}
AIM_ROUTING_S = 0.0002  # what routing may add to a request's p50 and p99
POLL_S = 0.5  # the servers' revision poll (shipyard.serving.routing.POLL_SECONDS)
BUSY_LOAD = 0.5


def row(path: str, clients: int) -> dict[str, Any]:
    """A load-generator row for serving.suite.load_round: single-row records POSTed to `path`."""
    return {"method": "POST", "path": path, "bodies": "records_1", "rows": 1, "clients": clients}


def deployment_server(ctx: Context, workspace: Path, deployment: str, workers: int) -> Server:
    port = free_port()
    cmd = [str(ctx.project_python.parent / "shipyard"), "serve", "--deployment", deployment,
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return Server(f"deployment-w{workers}", cmd, env=shipyard_env(workspace), cwd=workspace, port=port,
                  ready_path="/v2/health/ready")


def control(ctx: Context, workspace: Path, bodies: Path, *args: str) -> dict[str, Any]:
    return run_worker(ctx.project_python, CONTROL, [*args, "--workdir", str(workspace), "--bodies", str(bodies)],
                      env=shipyard_env(workspace), cwd=workspace, timeout=600)


def post(port: int, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check_routes(port: int, body: bytes, expected: dict[str, str]) -> dict[str, str]:
    """The model's route and the deployment's answer with version 1's predictions; the deployment's names it."""
    found = {}
    for key, path in (("direct", f"/predict/{MODEL_NAME}"), ("deployment", f"/predict/{ROUTED}")):
        status, headers, raw = post(port, path, body)
        if status != 200:
            found[key] = f"HTTP {status}: {raw[:300].decode('utf-8', 'replace')}"
            continue
        answer = json.loads(raw)
        ok = digest(answer["predictions"]) == expected["1"] and headers.get("x-model-version") == f"{MODEL_NAME}/1"
        if key == "deployment":
            ok = ok and headers.get("x-deployment-route") == "primary" and headers.get("x-deployment") == ROUTED
        found[key] = "ok" if ok else f"unexpected answer: {headers.get('x-model-version')} {answer}"[:300]
    return found


def model_rows(port: int, version: str) -> float:
    """Rows the server's model calls predicted with `version` of the model so far (from /metrics)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("shipyard_batch_rows_sum{") and f'version="{version}"' in line \
                and f'model="{MODEL_NAME}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- (1) and (2)


def routing_overhead(ctx: Context, server: Server, bodies: dict[str, str], cfg: dict[str, Any]) -> dict[str, Any]:
    """Direct and deployment rows in alternating rounds (direct first, then deployment first, ...)."""
    out: dict[str, Any] = {}
    for clients in cfg["clients"]:
        sides = {"direct": row(f"/predict/{MODEL_NAME}", clients), "deployment": row(f"/predict/{ROUTED}", clients)}
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
        for r in range(cfg["rounds"]):
            for side in list(sides) if r % 2 == 0 else list(sides)[::-1]:
                rounds[side].append(load_round(ctx, server, sides[side], bodies, cfg))
        rows = {side: combine(sides[side], rounds[side]) for side in sides}
        pairs = {q: [d[q] - s[q] for s, d in zip(rounds["direct"], rounds["deployment"])
                     if s.get(q) is not None and d.get(q) is not None] for q in ("p50_s", "p99_s")}
        out[f"c{clients}"] = {
            "clients": clients, **rows,
            "added_p50_s": median(pairs["p50_s"]) if pairs["p50_s"] else None,
            "added_p99_s": median(pairs["p99_s"]) if pairs["p99_s"] else None,
            "added_per_round": pairs,
        }
        ctx.log(f"    {clients} client(s): direct p50 {fmt_seconds(rows['direct']['p50_s'])}, deployment p50 "
                f"{fmt_seconds(rows['deployment']['p50_s'])}, added p50 {fmt_us(out[f'c{clients}']['added_p50_s'])}"
                f" p99 {fmt_us(out[f'c{clients}']['added_p99_s'])}")
    return out


def shadow_cost(ctx: Context, server: Server, workspace: Path, body_dir: Path, bodies: dict[str, str],
                cfg: dict[str, Any], versions: list[int]) -> dict[str, Any]:
    """The deployment's route at 8 clients without and with a shadow, alternating (off, on, on, off, ...)."""
    sc = row(f"/predict/{ROUTED}", cfg["shadow_clients"])
    shadow_version = str(versions[1])
    rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    changes: list[dict[str, Any]] = []
    state = "off"
    try:
        for r in range(cfg["rounds"]):
            for side in ("off", "on") if r % 2 == 0 else ("on", "off"):
                if side != state:
                    op = "shadow" if side == "on" else "unshadow"
                    changes.append(control(ctx, workspace, body_dir, "change", "--op", op, "--deployment", ROUTED,
                                           "--model", f"{MODEL_NAME}/{shadow_version}", "--port", str(server.port)))
                    state = side
                before = model_rows(server.port, shadow_version)
                load = load_round(ctx, server, sc, bodies, cfg)
                load["shadow_rows"] = model_rows(server.port, shadow_version) - before
                rounds[side].append(load)
    finally:
        if state == "on":
            control(ctx, workspace, body_dir, "change", "--op", "unshadow", "--deployment", ROUTED,
                    "--port", str(server.port))
    out: dict[str, Any] = {"clients": cfg["shadow_clients"], "changes": changes}
    for side in ("off", "on"):
        out[side] = combine(sc, rounds[side])
        out[side]["shadow_rows"] = sum(r["shadow_rows"] for r in rounds[side])
        out[side]["answered"] = sum(r["requests_done"] for r in rounds[side])
        ctx.log(f"    shadow {side}: {out[side]['requests_per_s'] or 0:,.0f} req/s, p50 "
                f"{fmt_seconds(out[side]['p50_s'])}, p99 {fmt_seconds(out[side]['p99_s'])}, "
                f"{out[side]['shadow_rows']:.0f} rows predicted by the shadow")
    return out


# --------------------------------------------------------------------------- (3)


def summarise(values: list[float]) -> dict[str, float | None]:
    return {"median_s": median(values) if values else None, "max_s": max(values) if values else None,
            "min_s": min(values) if values else None}


def rollback_times(ctx: Context, workspace: Path, body_dir: Path, cfg: dict[str, Any], workers: int,
                   versions: list[int]) -> dict[str, Any]:
    server = deployment_server(ctx, workspace, ROLLED, workers)
    result: dict[str, Any] = {"workers": workers, "command": server.cmd}
    try:
        result["ready_s"] = server.start()
        timings = control(ctx, workspace, body_dir, "rollbacks", "--deployment", ROLLED, "--port", str(server.port),
                          "--server-pid", str(server.pid), "--workers", str(workers),
                          "--per-worker", str(cfg["per_worker"]), "--count", str(cfg["rollbacks"]),
                          "--versions", *map(str, versions))
    except (ServerFailed, WorkerError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        result.update(failed=True, error=f"{exc}\n{server.log_tail()}"[-3000:])
        ctx.log(f"  rollbacks, {workers} worker(s): FAILED\n{result['error']}")
        return result
    finally:
        server.stop()
    cycles = timings["cycles"]
    result.update(timings)
    for kind in ("rollback", "promote"):
        later = cycles if kind == "rollback" else cycles[1:]  # the first promote loads version 2 in each worker
        result[kind] = {field: summarise([c[kind][field] for c in later]) for field in ("call_s", "first_s", "all_s")}
    result["first_promote"] = cycles[0]["promote"] if cycles else None
    ctx.log(f"    {workers} worker(s): rollback to first old answer median "
            f"{fmt_seconds(result['rollback']['first_s']['median_s'])}, max "
            f"{fmt_seconds(result['rollback']['first_s']['max_s'])}; every connection: max "
            f"{fmt_seconds(result['rollback']['all_s']['max_s'])}")
    return result


# --------------------------------------------------------------------------- suite entry points


def run(ctx: Context) -> dict[str, Any]:
    cfg = dict(QUICK if ctx.quick else FULL)
    notes: list[str] = []
    ctx.log(f"  self-check: {', '.join(selfcheck.run_all())} passed")
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start (above {BUSY_LOAD}); "
                     "latency figures shift with other work on the CPUs.")
        ctx.log(f"  warning: {notes[-1]}")
    result: dict[str, Any] = {"suite": NAME, "title": TITLE, "quick": ctx.quick, "config": cfg,
                              "shipyard_src": str(shipyard_src()), "notes": notes}
    with ctx.workdir("deployments") as wd:
        workspace, body_dir = wd / "shipyard", wd / "bodies"
        workspace.mkdir()
        ctx.log("  training and registering two versions, creating the deployments")
        setup = control(ctx, workspace, body_dir, "setup")
        result["setup"] = setup
        result["versions"] = {"shipyard": setup["version"]}
        bodies, versions = setup["bodies"], setup["versions"]
        first = Path(bodies["records_1"]).read_text().splitlines()[0].encode()

        server = deployment_server(ctx, workspace, ROUTED, 1)
        ctx.log(f"  (1) routing overhead and (2) shadow cost: shipyard serve --deployment {ROUTED}, 1 worker")
        try:
            result["ready_s"] = server.start()
            result["checks"] = check_routes(server.port, first, setup["expected"])
            if any(v != "ok" for v in result["checks"].values()):
                notes.append(f"Route checks failed, the figures may not mean what they say: {result['checks']}")
            result["routing"] = routing_overhead(ctx, server, bodies, cfg)
            result["shadow"] = shadow_cost(ctx, server, workspace, body_dir, bodies, cfg, versions)
        except (ServerFailed, WorkerError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            result["failed"] = f"{exc}\n{server.log_tail()}"[-3000:]
            ctx.log(f"  FAILED\n{result['failed']}")
        finally:
            server.stop()

        ctx.log(f"  (3) rollback time, {cfg['rollbacks']} rollbacks per server")
        result["rollbacks"] = [rollback_times(ctx, workspace, body_dir, cfg, w, versions)
                               for w in cfg["rollback_workers"]]
    result["load_average"] = {"start": load_start, "end": os.getloadavg()}
    result["aims"] = aims(result)
    return result


def aims(result: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, r in (result.get("routing") or {}).items():
        for q in ("p50", "p99"):
            added = r[f"added_{q}_s"]
            out.append({"aim": f"routing adds under {AIM_ROUTING_S * 1000:.1f} ms to {q}, {r['clients']} client(s)",
                        "figure": None if added is None else f"{fmt_us(added)} ({fmt_seconds(r['direct'][f'{q}_s'])}"
                                                             f" -> {fmt_seconds(r['deployment'][f'{q}_s'])})",
                        "met": None if added is None else added < AIM_ROUTING_S})
    for r in result.get("rollbacks", []):
        if r.get("failed"):
            continue
        worst = r["rollback"]["all_s"]["max_s"]
        out.append({"aim": f"a rollback to a loaded version reaches every connection within one poll "
                           f"({POLL_S:g} s), {r['workers']} worker(s)",
                    "figure": f"max {fmt_seconds(worst)} over {r['count']}",
                    "met": worst is not None and worst <= POLL_S})
    return out


# --------------------------------------------------------------------------- output


def fmt_us(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e6:+,.0f} µs"


def fmt_rps(r: float | None) -> str:
    return "-" if r is None else f"{r:,.0f}"


def render(result: dict[str, Any], console: Any) -> None:
    title = f"{result['title']} - Shipyard {result['versions']['shipyard']}"
    if result["quick"]:
        title += " [quick]"
    cfg = result["config"]
    console.note(title)
    if result.get("failed"):
        console.note(f"(1) and (2) FAILED: {result['failed'].splitlines()[0]}")
    rows = []
    for r in (result.get("routing") or {}).values():
        d, p = r["direct"], r["deployment"]
        rows.append([str(r["clients"]), fmt_seconds(d["p50_s"]), fmt_seconds(p["p50_s"]), fmt_us(r["added_p50_s"]),
                     fmt_seconds(d["p99_s"]), fmt_seconds(p["p99_s"]), fmt_us(r["added_p99_s"]),
                     fmt_rps(d["requests_per_s"]), fmt_rps(p["requests_per_s"]), f"{d['errors']}|{p['errors']}"])
    if rows:
        console.table(f"(1) Routing overhead: POST /predict/{MODEL_NAME} (direct) vs /predict/{ROUTED} (one primary "
                      "route), 1 worker, one row", ["Clients", "p50 direct", "p50 deployment", "added p50",
                                                    "p99 direct", "p99 deployment", "added p99", "req/s direct",
                                                    "req/s deployment", "Err"], rows, right_align=set(range(10)))
        costs = result["setup"].get("in_process", {})
        console.note(f"In-process, for reference: choosing a route {fmt_seconds(costs.get('choose_s'))} per request; "
                     f"the revision read a server makes every {POLL_S:g} s {fmt_seconds(costs.get('revision_read_s'))}"
                     " (median).")
        console.note(f"{cfg['rounds']} round(s) per side, alternating (direct first, then deployment first, ...), "
                     f"each {cfg['warmup_s']:g} s warm-up then {cfg['duration_s']:g} s measured; p50/p99 are the "
                     "medians of the rounds, 'added' the median of the per-round differences (deployment - "
                     f"direct). Checks: {result.get('checks')}.")
    sh = result.get("shadow")
    if sh:
        rows = []
        for side, label in (("off", "no shadow"), ("on", f"shadow {MODEL_NAME}/{result['setup']['versions'][1]}")):
            s = sh[side]
            rows.append([label, fmt_rps(s["requests_per_s"]), fmt_seconds(s["p50_s"]), fmt_seconds(s["p99_s"]),
                         fmt_seconds(s["server_cpu_per_request_s"]), f"{s['shadow_rows']:,.0f} of {s['answered']:,}",
                         str(s["errors"])])
        console.table(f"(2) The primary with and without a shadow: POST /predict/{ROUTED}, {sh['clients']} clients, "
                      "1 worker", ["Deployment", "req/s", "p50", "p99", "CPU/req", "rows the shadow predicted",
                                   "Err"], rows, right_align={1, 2, 3, 4, 5, 6})
        follow = [c["followed_s"] for c in sh["changes"]]
        console.note("Rounds alternate (no shadow, shadow, shadow, no shadow, ...); the shadow is attached and "
                     "detached through the Python API between rounds, and a round starts once the server answers "
                     f"with the new revision ({len(follow)} changes, followed in "
                     f"{fmt_seconds(median(follow)) if follow else '-'} median). CPU/req = server CPU per answered "
                     "request; a shadow predicts each request again after the primary answered. No aim was set.")
    rows = []
    for r in result.get("rollbacks", []):
        if r.get("failed"):
            rows.append([str(r["workers"]), "FAILED: " + r["error"].splitlines()[0][:100]] + ["-"] * 8)
            continue
        rb, pr, fp = r["rollback"], r["promote"], r["first_promote"]
        rows.append([str(r["workers"]), str(r["count"]),
                     f"{r['connections']} ({r['processes_covered']} proc.)",
                     fmt_seconds(rb["call_s"]["median_s"]),
                     f"{fmt_seconds(rb['first_s']['median_s'])} / {fmt_seconds(rb['first_s']['max_s'])}",
                     f"{fmt_seconds(rb['all_s']['median_s'])} / {fmt_seconds(rb['all_s']['max_s'])}",
                     f"{fmt_seconds(pr['all_s']['median_s'])} / {fmt_seconds(pr['all_s']['max_s'])}",
                     fmt_seconds(fp["all_s"]) if fp else "-",
                     fmt_seconds(r["client_interval_s"]), str(r["errors"])])
    if rows:
        console.table(f"(3) Rollback to the old version while clients poll: POST /predict/{ROLLED}",
                      ["Workers", "Rollbacks", "Connections", "API call", "first old answer med / max",
                       "every conn. med / max", "promote (loaded) med / max", "first promote (loads v2)",
                       "poll every", "Err"], rows, right_align=set(range(10)))
        console.note("Each cycle: a random pause (0-1 s), canary of version 2 at 100% (a promotion), a random "
                     "pause, rollback to version 1, all through the Python API. Times run from the call returning "
                     "to the first answer naming the old version on any polling connection ('first') and on every "
                     "one ('every'); each worker process holds the same number of connections. The first "
                     "promotion loads version 2 in each worker and is shown on its own. A server starts a revision read "
                     f"every {POLL_S:g} s, and the first answer by the old version arrives a read and a request's "
                     f"time after the switch, so the worst case is a little over {POLL_S:g} s; 'poll every' is the "
                     "clients' mean time between two requests on one connection.")
    rows = [[a["aim"], a["figure"] or "-", {True: "met", False: "NOT MET", None: "-"}[a["met"]]]
            for a in result.get("aims", [])]
    console.table("Aims", ["Aim", "Figure", ""], rows)
    for note in result["notes"]:
        console.note(note)
