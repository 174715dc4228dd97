"""Model serving: ``shipyard serve`` vs ``mlflow models serve``, the same scikit-learn pipeline behind both.

Each server is a real process tree on 127.0.0.1, started, warmed up and measured alone, with one worker
and then with more. The load comes from a separate process (``loadgen.py``, keep-alive clients on raw
sockets), the same for both servers, with the same request bodies (MLflow's ``dataframe_split`` on
``/invocations``); Shipyard's Open Inference Protocol route is measured too. Memory is PSS and RSS summed
over each server's process tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from common import REPO_ROOT, Context, base_env, fmt_ratio, fmt_seconds, parse_result, run_worker

from serving import selfcheck
from serving._shared import BATCH_ROWS, MODEL_NAME, digest, median
from serving.servers import Server, ServerFailed, free_port, http_post, process_tree, tree_cpu_seconds, tree_memory

NAME = "serving"
TITLE = "Model serving: shipyard serve vs mlflow models serve (scikit-learn pipeline, 10 features)"

HERE = Path(__file__).resolve().parent
SHIPYARD_WORKER = HERE / "shipyard_worker.py"
MLFLOW_WORKER = HERE / "mlflow_worker.py"
LOADGEN = HERE / "loadgen.py"

# Each row: `rounds` load-generator runs per server, alternating between the servers, each `warmup_s` unmeasured
# then `duration_s` measured.
FULL = {"warmup_s": 1.0, "duration_s": 4.0, "rounds": 3, "workers": [1, 2, 4], "clients": 8}
QUICK = {"warmup_s": 0.5, "duration_s": 2.0, "rounds": 1, "workers": [1, 2], "clients": 8}
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5
MEMORY_SAMPLE_S = 0.5
#: An empty round trip this slow is the 40 ms delayed-ACK stall of a socket without TCP_NODELAY, not work.
DELAYED_ACK_S = 0.03

INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"


def scenarios(clients: int) -> list[dict[str, Any]]:
    """What is measured against each server: (key, label, method, path, body file key, clients, who)."""
    both, ours = ("shipyard", "mlflow"), ("shipyard",)
    rows = f"{BATCH_ROWS:,} rows"
    return [
        {"key": "empty", "label": "empty: GET /ping", "method": "GET", "path": "/ping",
         "bodies": None, "rows": 0, "clients": 1, "tools": both},
        {"key": "one_c1", "label": "1 row, 1 client", "method": "POST", "path": "/invocations",
         "bodies": "split_1", "rows": 1, "clients": 1, "tools": both},
        {"key": f"one_c{clients}", "label": f"1 row, {clients} clients", "method": "POST",
         "path": "/invocations", "bodies": "split_1", "rows": 1, "clients": clients, "tools": both},
        {"key": "batch_c1", "label": f"{rows}, 1 client", "method": "POST", "path": "/invocations",
         "bodies": "split_batch", "rows": BATCH_ROWS, "clients": 1, "tools": both},
        {"key": f"batch_c{clients}", "label": f"{rows}, {clients} clients", "method": "POST",
         "path": "/invocations", "bodies": "split_batch", "rows": BATCH_ROWS, "clients": clients, "tools": both},
        {"key": "oip_one_c1", "label": "OIP: 1 row, 1 client", "method": "POST", "path": INFER_PATH,
         "bodies": "oip_1", "rows": 1, "clients": 1, "tools": ours},
        {"key": f"oip_one_c{clients}", "label": f"OIP: 1 row, {clients} clients", "method": "POST",
         "path": INFER_PATH, "bodies": "oip_1", "rows": 1, "clients": clients, "tools": ours},
        {"key": "oip_batch_c1", "label": f"OIP: {rows}, 1 client", "method": "POST", "path": INFER_PATH,
         "bodies": "oip_batch", "rows": BATCH_ROWS, "clients": 1, "tools": ours},
    ]


# --------------------------------------------------------------------------- environments and commands


def shipyard_src() -> Path:
    """The Shipyard sources to measure: this checkout's, or another tree's `src` named by BENCH_SHIPYARD_SRC."""
    given = os.environ.get("BENCH_SHIPYARD_SRC")
    src = Path(given).resolve() if given else REPO_ROOT / "src"
    if not (src / "shipyard" / "__init__.py").is_file():
        raise SystemExit(f"BENCH_SHIPYARD_SRC={given!r} has no shipyard/__init__.py; point it at a checkout's src "
                         "folder, e.g. BENCH_SHIPYARD_SRC=../other-checkout/src.")
    return src


def shipyard_env(workspace: Path) -> dict[str, str]:
    """Shipyard runs from source (PYTHONPATH), so the figures are those of the code next to the suite."""
    env = base_env()
    env.update(SHIPYARD_WORKSPACE=str(workspace), SHIPYARD_USER="bench", PYTHONPATH=str(shipyard_src()))
    return env


def mlflow_env(workdir: Path, peers_python: Path) -> dict[str, str]:
    env = base_env()
    # `mlflow models serve` runs `uvicorn` through the shell: the virtualenv's bin must be on PATH, as when
    # the virtualenv is activated.
    env["PATH"] = f"{peers_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}", MLFLOW_DISABLE_TELEMETRY="true",
               DO_NOT_TRACK="true")
    return env


def shipyard_has_workers(ctx: Context, workspace: Path) -> bool:
    """Whether this checkout's ``shipyard serve`` takes ``--workers`` (the multi-worker rows need it)."""
    proc = subprocess.run([str(ctx.project_python.parent / "shipyard"), "serve", "--help"], env={
        **shipyard_env(workspace), "COLUMNS": "200"}, cwd=workspace, capture_output=True, text=True, timeout=120)
    return "--workers" in proc.stdout


def shipyard_server(ctx: Context, workspace: Path, ref: str, workers: int, with_flag: bool) -> Server:
    port = free_port()
    cmd = [str(ctx.project_python.parent / "shipyard"), "serve", ref, "--host", "127.0.0.1", "--port", str(port)]
    if with_flag:
        cmd += ["--workers", str(workers)]
    return Server(f"shipyard-w{workers}", cmd, env=shipyard_env(workspace), cwd=workspace, port=port,
                  ready_path="/v2/health/ready")


def mlflow_server(ctx: Context, workdir: Path, uri: str, workers: int) -> Server:
    port = free_port()
    cmd = [str(ctx.peers_python.parent / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    return Server(f"mlflow-w{workers}", cmd, env=mlflow_env(workdir, ctx.peers_python), cwd=workdir, port=port,
                  ready_path="/ping")


# --------------------------------------------------------------------------- measuring one server


class MemorySampler:
    """Samples PSS/RSS of a fixed set of processes in a thread; keeps the peak."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak: dict[str, Any] = {"pss_bytes": 0, "rss_bytes": 0, "processes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        mem = tree_memory(self.root)
        if mem["pss_bytes"] > self.peak["pss_bytes"]:
            self.peak = mem

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_S):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_loadgen(ctx: Context, port: int, sc: dict[str, Any], bodies: dict[str, str], cfg: dict[str, Any],
                cwd: Path) -> dict[str, Any]:
    cmd = [str(ctx.project_python), str(LOADGEN), "--port", str(port), "--method", sc["method"], "--path", sc["path"],
           "--clients", str(sc["clients"]), "--warmup", str(cfg["warmup_s"]), "--duration", str(cfg["duration_s"])]
    if sc["bodies"]:
        cmd += ["--bodies", bodies[sc["bodies"]]]
    timeout = cfg["warmup_s"] + cfg["duration_s"] + 120
    proc = subprocess.run(cmd, env=base_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ServerFailed(f"load generator failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return parse_result(proc.stdout)


def check_predictions(server: Server, tool: str, bodies: dict[str, str], expected: dict[str, str]) -> dict[str, Any]:
    """One request per body kind; the predictions must equal raw scikit-learn's on the same rows."""
    def first(key: str) -> bytes:
        return Path(bodies[key]).read_text().splitlines()[0].encode()

    found: dict[str, Any] = {}
    kinds = [("split_1", "single"), ("split_batch", "batch")]
    if tool == "shipyard":
        kinds += [("oip_1", "single"), ("oip_batch", "batch")]
    for key, which in kinds:
        path = INFER_PATH if key.startswith("oip") else "/invocations"
        status, body = http_post(server.port, path, first(key))
        if status != 200:
            found[key] = f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
            continue
        payload = json.loads(body)
        predictions = payload["outputs"][0]["data"] if key.startswith("oip") else payload["predictions"]
        found[key] = "ok" if digest(predictions) == expected[which] else "different predictions"
    return found


def start_server(ctx: Context, server: Server, tool: str, workers: int, bodies: dict[str, str],
                 expected: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"tool": tool, "workers": workers, "command": server.cmd, "scenarios": {}}
    try:
        result["ready_s"] = server.start()
        result["memory_idle"] = tree_memory(server.pid)
        result["checks"] = check_predictions(server, tool, bodies, expected)
        result["processes"] = len(process_tree(server.pid))
    except (ServerFailed, OSError, ValueError) as exc:
        fail(ctx, server, result, exc)
    return result


def fail(ctx: Context, server: Server, result: dict[str, Any], exc: BaseException) -> None:
    result["failed"] = True
    result["error"] = f"{exc}\n{server.log_tail()}"[-3000:]
    ctx.log(f"  {server.label}: FAILED\n{result['error']}")
    server.stop()


def load_round(ctx: Context, server: Server, sc: dict[str, Any], bodies: dict[str, str],
               cfg: dict[str, Any]) -> dict[str, Any]:
    """One load-generator run against one server, with the server's CPU time and peak memory meanwhile."""
    cpu0 = tree_cpu_seconds(server.pid)
    with MemorySampler(server.pid) as sampler:
        load = run_loadgen(ctx, server.port, sc, bodies, cfg, server.cwd)
    load["server_cpu_s"] = tree_cpu_seconds(server.pid) - cpu0
    load["requests_done"] = load["ok"] + load["errors"] + load["warmup_requests"]
    load["peak_memory"] = sampler.peak
    return load


def combine(sc: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one row: median of each round's req/s and percentiles, errors and CPU summed."""
    def med(field: str) -> float | None:
        values = [r[field] for r in rounds if r.get(field) is not None]
        return median(values) if values else None

    done = sum(r["requests_done"] for r in rounds)
    cpu = sum(r["server_cpu_s"] for r in rounds)
    rps = med("requests_per_s")
    return {
        "requests_per_s": rps,
        "rows_per_s": rps * sc["rows"] if rps is not None else None,
        "p50_s": med("p50_s"), "p90_s": med("p90_s"), "p99_s": med("p99_s"),
        "max_s": max((r["max_s"] for r in rounds if r.get("max_s") is not None), default=None),
        "ok": sum(r["ok"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "error_samples": [e for r in rounds for e in r["error_samples"]][:3],
        "server_cpu_per_request_s": cpu / done if done else None,
        "peak_memory": max((r["peak_memory"] for r in rounds), key=lambda m: m["pss_bytes"]),
        "rounds": rounds,
    }


def measure_workers(ctx: Context, servers: dict[str, Server], workers: int, cfg: dict[str, Any],
                    bodies: dict[str, str], expected: dict[str, str]) -> list[dict[str, Any]]:
    """Start the servers of one worker count side by side and measure every row in alternating rounds
    (MLflow, Shipyard, then Shipyard, MLflow, ...), so that a change in the machine's other load hits both;
    only one server has load at a time."""
    results: dict[str, dict[str, Any]] = {}
    try:
        for tool, server in servers.items():
            results[tool] = start_server(ctx, server, tool, workers, bodies, expected)
        for sc in scenarios(cfg["clients"]):
            tools = [t for t in servers if t in sc["tools"]]
            rounds: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
            for r in range(cfg["rounds"]):
                for tool in tools if r % 2 == 0 else tools[::-1]:
                    if results[tool].get("failed"):
                        continue
                    try:
                        rounds[tool].append(load_round(ctx, servers[tool], sc, bodies, cfg))
                    except (ServerFailed, OSError, ValueError, subprocess.TimeoutExpired) as exc:
                        fail(ctx, servers[tool], results[tool], exc)
            for tool in tools:
                if results[tool].get("failed") or not rounds[tool]:
                    continue
                row = combine(sc, rounds[tool])
                results[tool]["scenarios"][sc["key"]] = row
                ctx.log(f"    {tool} w{workers} {sc['label']}: {row['requests_per_s'] or 0:,.0f} req/s, "
                        f"p50 {fmt_seconds(row['p50_s'])}, p99 {fmt_seconds(row['p99_s'])}, {row['errors']} errors")
        for tool, result in results.items():
            if not result.get("failed"):
                peaks = [sc["peak_memory"] for sc in result["scenarios"].values()] + [result["memory_idle"]]
                result["memory_peak"] = max(peaks, key=lambda m: m["pss_bytes"])
    finally:
        for server in servers.values():
            server.stop()
    return list(results.values())


# --------------------------------------------------------------------------- suite entry points


def run(ctx: Context) -> dict[str, Any]:
    cfg = dict(QUICK if ctx.quick else FULL)
    notes: list[str] = []
    ctx.log(f"  self-check: {', '.join(selfcheck.run_all())} passed")
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start (above {BUSY_LOAD}); "
                     "throughput and tail latency shift with other work on the CPUs, for either server.")
        ctx.log(f"  warning: {notes[-1]}")

    with ctx.workdir("serving") as wd:
        workspace, mlflow_dir, body_dir = wd / "shipyard", wd / "mlflow", wd / "bodies"
        workspace.mkdir()
        mlflow_dir.mkdir()
        ctx.log("  training and registering the model on both sides")
        sy = run_worker(ctx.project_python, SHIPYARD_WORKER, ["--workdir", str(workspace), "--bodies", str(body_dir)],
                        env=shipyard_env(workspace), cwd=workspace)
        ml = run_worker(ctx.peers_python, MLFLOW_WORKER, ["--workdir", str(mlflow_dir)],
                        env=mlflow_env(mlflow_dir, ctx.peers_python), cwd=mlflow_dir)
        if sy["model_digest"] != ml["model_digest"] or sy["expected"] != ml["expected"]:
            notes.append("The two virtualenvs trained different models (digests differ): compare the library "
                         "versions below.")
        has_workers = shipyard_has_workers(ctx, workspace)
        if not has_workers:
            notes.append("`shipyard serve` has no --workers option in this checkout: Shipyard runs with one "
                         "worker only, and the multi-worker rows show MLflow alone.")
        servers: list[dict[str, Any]] = []
        for workers in cfg["workers"]:
            pair = {"mlflow": mlflow_server(ctx, mlflow_dir, ml["model_uri"], workers)}
            if workers == 1 or has_workers:
                pair["shipyard"] = shipyard_server(ctx, workspace, sy["ref"], workers, with_flag=has_workers)
            ctx.log(f"  {workers} worker(s): {' and '.join(pair)}")
            servers += measure_workers(ctx, pair, workers, cfg, sy["bodies"], sy["expected"])

    stalled = [str(r["workers"]) for r in servers if r["tool"] == "mlflow" and r["workers"] > 1
               and (_sc(r, "empty", "p50_s") or 0) >= DELAYED_ACK_S]
    if stalled:
        notes.append(f"MLflow with {' and '.join(stalled)} workers answers an empty request in about 40 ms: its "
                     "uvicorn workers serve a socket without TCP_NODELAY, so every keep-alive response waits for "
                     "the client's delayed ACK (benchmarks/README.md). Its 1-worker rows are the like-for-like "
                     "comparison.")
    if sy["libraries"] != ml["libraries"]:
        differ = {k: (sy["libraries"][k], ml["libraries"].get(k)) for k in sy["libraries"]
                  if sy["libraries"][k] != ml["libraries"].get(k)}
        notes.append("Library versions that differ between the virtualenvs (Shipyard side, MLflow side): "
                     + ", ".join(f"{k} {a} / {b}" for k, (a, b) in differ.items()) + ".")
    result = {
        "suite": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "config": cfg,
        "versions": {"shipyard": sy["version"], "mlflow": ml["version"]},
        "libraries": {"shipyard": sy["libraries"], "mlflow": ml["libraries"]},
        "setup": {"shipyard": sy, "mlflow": ml},
        "shipyard_has_workers": has_workers,
        "shipyard_src": str(shipyard_src()),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "servers": servers,
        "notes": notes,
    }
    result["aims"] = aims(result)
    return result


def _server(result: dict[str, Any], tool: str, workers: int) -> dict[str, Any] | None:
    for s in result["servers"]:
        if s["tool"] == tool and s["workers"] == workers and not s.get("failed"):
            return s
    return None


def _sc(server: dict[str, Any] | None, key: str, field: str) -> Any:
    if server is None:
        return None
    return server["scenarios"].get(key, {}).get(field)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def aims(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets the suite was written to check, each with the figures it is read from."""
    c = result["config"]["clients"]
    out: list[dict[str, Any]] = []
    sy1, ml1 = _server(result, "shipyard", 1), _server(result, "mlflow", 1)
    for workers in result["config"]["workers"]:
        sy, ml = _server(result, "shipyard", workers), _server(result, "mlflow", workers)
        key = f"one_c{c}"
        ratio = _div(_sc(sy, key, "requests_per_s"), _sc(ml, key, "requests_per_s"))
        p99 = (_sc(sy, key, "p99_s"), _sc(ml, key, "p99_s"))
        out.append({"aim": f">= 3x MLflow's requests/s at {c} clients with a lower p99, {workers} worker(s)",
                    "figure": None if ratio is None else f"{ratio:.2f}x; p99 {fmt_seconds(p99[0])} vs "
                                                         f"{fmt_seconds(p99[1])}",
                    "met": None if ratio is None else (ratio >= 3 and p99[0] is not None and p99[1] is not None
                                                       and p99[0] < p99[1])})
    raw = result["setup"]["shipyard"]["raw_predict"]["per_call_s"]
    empty = _sc(sy1, "empty", "p50_s")
    p50 = _sc(sy1, "one_c1", "p50_s")
    if empty is not None and p50 is not None:
        gap = p50 - raw - empty
        out.append({"aim": "1 worker, 1 client: p50 within 1 ms of raw predict + empty round trip",
                    "figure": f"p50 {fmt_seconds(p50)} = raw {fmt_seconds(raw)} + empty {fmt_seconds(empty)} "
                              f"+ {fmt_seconds(gap)}",
                    "met": gap <= 0.001})
    workers_max = max(result["config"]["workers"])
    syn = _server(result, "shipyard", workers_max)
    if sy1 is not None and syn is not None and workers_max > 1:
        r = _div(syn["memory_peak"]["pss_bytes"], sy1["memory_peak"]["pss_bytes"])
        out.append({"aim": f"{workers_max} workers use <= 1.5x the memory (PSS) of one",
                    "figure": f"{r:.2f}x" if r is not None else None, "met": r is not None and r <= 1.5})
    elif ml1 is not None:
        out.append({"aim": f"{workers_max} workers use <= 1.5x the memory (PSS) of one",
                    "figure": "not measured: shipyard serve has one worker here", "met": None})
    return out


# --------------------------------------------------------------------------- output


def fmt_mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def fmt_rps(r: float | None) -> str:
    return "-" if r is None else f"{r:,.0f}"


def render(result: dict[str, Any], console: Any) -> None:
    versions = result["versions"]
    title = f"{result['title']} - Shipyard {versions['shipyard']}, MLflow {versions['mlflow']}"
    if result["quick"]:
        title += " [quick]"
    cfg = result["config"]
    headers = ["Workload", "W", "req/s S", "req/s M", "S/M", "p50 S", "p50 M", "p99 S", "p99 M", "S/M p99",
               "rows/s S", "CPU/req S", "CPU/req M", "Err S|M"]
    rows = []
    for workers in cfg["workers"]:
        sy, ml = _server(result, "shipyard", workers), _server(result, "mlflow", workers)
        for sc in scenarios(cfg["clients"]):
            k = sc["key"]
            if (sy is None and ml is None) or ("mlflow" not in sc["tools"] and sy is None):
                continue

            def errs(s: dict[str, Any] | None) -> str:
                return "-" if s is None or k not in s["scenarios"] else str(_sc(s, k, "errors"))

            rows.append([
                sc["label"], str(workers), fmt_rps(_sc(sy, k, "requests_per_s")), fmt_rps(_sc(ml, k, "requests_per_s")),
                fmt_ratio(_div(_sc(sy, k, "requests_per_s"), _sc(ml, k, "requests_per_s"))),
                fmt_seconds(_sc(sy, k, "p50_s")), fmt_seconds(_sc(ml, k, "p50_s")),
                fmt_seconds(_sc(sy, k, "p99_s")), fmt_seconds(_sc(ml, k, "p99_s")),
                fmt_ratio(_div(_sc(sy, k, "p99_s"), _sc(ml, k, "p99_s"))),
                fmt_rps(_sc(sy, k, "rows_per_s")) if sc["rows"] else "-",
                fmt_seconds(_sc(sy, k, "server_cpu_per_request_s")),
                fmt_seconds(_sc(ml, k, "server_cpu_per_request_s")),
                f"{errs(sy)}|{errs(ml)}",
            ])
    console.table(title, headers, rows, right_align=set(range(1, 14)))
    console.note(f"Each row: {cfg['rounds']} round(s) per server, alternating between the servers, each "
                 f"{cfg['warmup_s']:g} s warm-up then {cfg['duration_s']:g} s measured (median of the rounds shown); "
                 "closed loop, keep-alive connections from a separate load-generator process. S/M = Shipyard / MLflow "
                 "(req/s: above 1 is better for Shipyard; p99: below 1 is). CPU/req = server CPU time "
                 "(all its processes) per request. OIP rows are Shipyard only.")

    headers = ["Server", "Workers", "Processes", "Ready in", "PSS idle", "PSS peak", "RSS peak",
               "PSS peak vs 1 worker", "S/M PSS peak", "Checks"]
    rows = []
    for s in result["servers"]:
        if s.get("failed"):
            rows.append([s["tool"], str(s["workers"]), "-", "-", "-", "-", "-", "-", "-",
                         "FAILED: " + s["error"].splitlines()[0][:80]])
            continue
        one = _server(result, s["tool"], 1)
        other = _server(result, "mlflow" if s["tool"] == "shipyard" else "shipyard", s["workers"])
        ratio = _div(s["memory_peak"]["pss_bytes"], other["memory_peak"]["pss_bytes"]) if (
            s["tool"] == "shipyard" and other) else None
        checks = s.get("checks", {})
        rows.append([
            s["tool"], str(s["workers"]), str(s["processes"]), fmt_seconds(s["ready_s"]),
            fmt_mib(s["memory_idle"]["pss_bytes"]), fmt_mib(s["memory_peak"]["pss_bytes"]),
            fmt_mib(s["memory_peak"]["rss_bytes"]),
            fmt_ratio(_div(s["memory_peak"]["pss_bytes"], one["memory_peak"]["pss_bytes"]) if one else None),
            fmt_ratio(ratio),
            "ok" if checks and all(v == "ok" for v in checks.values()) else
            ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok") or "-",
        ])
    console.table("Server memory (summed over the process tree) and prediction checks", headers, rows,
                  right_align={1, 2, 3, 4, 5, 6, 7, 8})

    sy, ml = result["setup"]["shipyard"], result["setup"]["mlflow"]
    sy1 = _server(result, "shipyard", 1)
    ml1 = _server(result, "mlflow", 1)
    rows = [
        ["raw scikit-learn predict, one-row DataFrame (project venv)", fmt_seconds(sy["raw_predict"]["per_call_s"])],
        ["raw scikit-learn predict, one-row DataFrame (peers venv)", fmt_seconds(ml["raw_predict"]["per_call_s"])],
        ["raw scikit-learn predict, one-row numpy array (project venv)",
         fmt_seconds(sy["raw_predict_numpy"]["per_call_s"])],
        ["Shipyard loaded model predict (signature enforced)", fmt_seconds(sy["loaded_predict"]["per_call_s"])],
        ["MLflow pyfunc predict (schema enforced)", fmt_seconds(ml["pyfunc_predict"]["per_call_s"])],
        ["empty round trip p50, Shipyard 1 worker", fmt_seconds(_sc(sy1, "empty", "p50_s"))],
        ["empty round trip p50, MLflow 1 worker", fmt_seconds(_sc(ml1, "empty", "p50_s"))],
        ["/invocations 1 row p50, Shipyard 1 worker 1 client", fmt_seconds(_sc(sy1, "one_c1", "p50_s"))],
        ["/invocations 1 row p50, MLflow 1 worker 1 client", fmt_seconds(_sc(ml1, "one_c1", "p50_s"))],
    ]
    console.table("In-process floor (median per call) and single-request latency", ["What", "Time"], rows,
                  right_align={1})
    rows = [[a["aim"], a["figure"] or "-", {True: "met", False: "NOT MET", None: "-"}[a["met"]]]
            for a in result["aims"]]
    console.table("Aims", ["Aim", "Figure", ""], rows)
    for note in result["notes"]:
        console.note(note)
    for s in result["servers"]:
        for key, sc in s.get("scenarios", {}).items():
            if sc.get("errors"):
                console.note(f"{s['tool']} w{s['workers']} {key}: {sc['errors']} errors, "
                             f"e.g. {sc['error_samples'][:1]}")
