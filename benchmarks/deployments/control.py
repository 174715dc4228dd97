"""Shipyard side of the deployments benchmark: prepare the workspace, change a deployment, time rollbacks.

Run with the project's virtualenv python and ``SHIPYARD_WORKSPACE`` set to ``--workdir``. One command per run,
each printing one ``BENCH_RESULT {json}`` line:

    setup      create the workspace, train and register two versions of ``serving-bench`` (no gates declared),
               create the deployments, write the request bodies
    change     attach (``shadow``) or detach (``unshadow``) the shadow, then wait until the server answers with
               the new revision
    rollbacks  with clients polling the server continuously, promote a canary of version 2 and roll back to
               version 1, ``--count`` times, and time when the polling clients see each change
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serving"))

from _shared import FEATURES, MODEL_NAME, SEED, dataset, digest, emit, request_frames, train  # noqa: E402
from loadgen import Connection, build_request  # noqa: E402
from servers import process_tree  # noqa: E402

os.environ.setdefault("SHIPYARD_USER", "bench")

ROUTED = "bench-api"  # routing overhead and shadow cost
ROLLED = "bench-rollback"  # rollbacks, on servers of their own
BODY_FILE = "records-1row.jsonl"  # /predict/NAME bodies: a list of one record
FOLLOW_TIMEOUT_S = 30.0  # a server that has not followed a change by then is reported as failed


def records_body(frame: Any) -> str:
    return json.dumps(frame.to_dict(orient="records"), separators=(",", ":"))


# --------------------------------------------------------------------------- setup


def setup(workdir: Path, bodies: Path) -> dict[str, Any]:
    import shipyard

    shipyard.init_workspace(workdir)
    spec = workdir / "shipyard.yaml"
    spec.write_text(spec.read_text() + f"gates:\n  {MODEL_NAME}: {{}}\n")  # no gates: every version may route
    X, y = dataset()
    from sklearn.base import clone

    first = train(X, y)
    second = clone(first).set_params(logisticregression__C=0.05).fit(X, y)  # another model, the same cost
    with shipyard.start_run(name="deployments-bench", experiment="deployments-bench") as run:
        v1 = run.log_model(first, MODEL_NAME, input_example=X.head(5))
        v2 = run.log_model(second, MODEL_NAME, input_example=X.head(5))
    for name in (ROUTED, ROLLED):
        shipyard.deployments.create(name, f"{MODEL_NAME}/{v1.version}")
    in_process = routing_costs(workdir)
    singles, _ = request_frames(X)
    bodies.mkdir(parents=True, exist_ok=True)
    (bodies / BODY_FILE).write_text("\n".join(records_body(f) for f in singles) + "\n")
    return {
        "version": shipyard.__version__,
        "versions": [v1.version, v2.version],
        "deployments": [ROUTED, ROLLED],
        "bodies": {"records_1": str(bodies / BODY_FILE)},
        "features": FEATURES,
        "in_process": in_process,
        "expected": {str(v1.version): digest(first.predict(singles[0])),
                     str(v2.version): digest(second.predict(singles[0]))},
    }


def routing_costs(workdir: Path, calls: int = 100_000, reads: int = 200) -> dict[str, float]:
    """In-process, for reference: a route choice on a one-route table, and the read a server makes every poll."""
    from shipyard.context import open_context
    from shipyard.deployments.revisions import current_routing
    from shipyard.serving.routing import RouteTable

    ctx = open_context(workdir)
    revision, routes, sticky_by = current_routing(ctx, ROUTED)
    models: dict[str, Any] = {r.version_id: object() for r in routes}  # choosing a route never touches the model
    table = RouteTable.build(ROUTED, revision, routes, sticky_by, models)
    t0 = time.perf_counter()
    for _ in range(calls):
        table.choose(None)
    choose_s = (time.perf_counter() - t0) / calls
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        current_routing(ctx, ROUTED)
        times.append(time.perf_counter() - t0)
    return {"choose_s": choose_s, "revision_read_s": sorted(times)[len(times) // 2]}


# --------------------------------------------------------------------------- change and wait


def first_body(bodies: Path) -> bytes:
    return (bodies / BODY_FILE).read_text().splitlines()[0].encode()


def served_revision(port: int, deployment: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/predict/{deployment}", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST /predict/{deployment} answered {resp.status}")
        return int(resp.headers["X-Deployment-Revision"])
    finally:
        conn.close()


def change(op: str, deployment: str, model: str, port: int, bodies: Path) -> dict[str, Any]:
    import shipyard

    t0 = time.perf_counter()
    if op == "shadow":
        revision = shipyard.deployments.shadow(deployment, model).revision
    else:
        revision = shipyard.deployments.unshadow(deployment).revision
    returned = time.perf_counter()
    body = first_body(bodies)
    while (seen := served_revision(port, deployment, body)) != revision:
        if time.perf_counter() - returned > FOLLOW_TIMEOUT_S:
            raise SystemExit(f"the server still serves revision {seen} of {deployment} {FOLLOW_TIMEOUT_S:.0f} s "
                             f"after revision {revision} was made")
        time.sleep(0.01)  # polling interval while waiting for the server to follow
    return {"op": op, "revision": revision, "call_s": returned - t0, "followed_s": time.perf_counter() - returned}


# --------------------------------------------------------------------------- which worker holds a connection


def socket_inodes(local_port: int, remote_port: int, proc: Path = Path("/proc")) -> set[str]:
    """Inodes of the IPv4 TCP sockets from local_port to remote_port (as seen from the server's side)."""
    found = set()
    for line in (proc / "net" / "tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], parts[9]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            found.add(inode)
    return found


def owner(server_pid: int, server_port: int, client_port: int) -> int | None:
    """The process of the server's tree that holds the accepted end of a client's connection."""
    inodes = {f"socket:[{i}]" for i in socket_inodes(server_port, client_port)}
    for pid in process_tree(server_pid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None


# --------------------------------------------------------------------------- rollbacks


class Poller(threading.Thread):
    """One keep-alive client in a closed loop; records each change of the version that answers it."""

    def __init__(self, conn: Connection, request: bytes) -> None:
        super().__init__(daemon=True)
        self.conn, self.request = conn, request
        self.current: str | None = None
        self.events: list[tuple[float, float, str]] = []  # (sent, answered, version) when the version changed
        self.requests = 0
        self.errors = 0
        self.samples: list[str] = []
        self.halt = threading.Event()

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(what[:200])

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.perf_counter()
            try:
                status, body = self.conn.exchange(self.request)
            except (OSError, ValueError) as exc:
                self.conn.close()
                self.error(f"{type(exc).__name__}: {exc}")
                continue
            t1 = time.perf_counter()
            if status != 200:
                self.error(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                continue
            self.requests += 1
            version = json.loads(body)["model_version"]
            if version != self.current:
                self.events.append((t0, t1, version))
                self.current = version

    def first_answer(self, version: str, after: float) -> float | None:
        """When the first answer by `version` to a request sent after `after` arrived."""
        return next((t1 for t0, t1, v in self.events if v == version and t1 > after), None)


def connect(port: int, server_pid: int, workers: int, per_worker: int, request: bytes
            ) -> tuple[list[Connection], dict[int, int]]:
    """Open connections until each of the server's worker processes holds `per_worker` of them (bounded tries)."""
    held: dict[int, list[Connection]] = {}
    for _ in range(8 * workers * per_worker):
        conn = Connection("127.0.0.1", port, 10.0)
        conn.open()
        conn.exchange(request)  # accepted: the worker holds its end now
        assert conn.sock is not None
        pid = owner(server_pid, port, conn.sock.getsockname()[1])
        key = pid if pid is not None else -1
        if len(held.get(key, [])) >= per_worker:
            conn.close()
        else:
            held.setdefault(key, []).append(conn)
        if len([k for k in held if k != -1]) >= workers and all(len(v) >= per_worker for v in held.values()):
            break
    return [c for conns in held.values() for c in conns], {k: len(v) for k, v in held.items()}


def wait_all(pollers: list[Poller], version: str, since: float, what: str) -> None:
    while not all(p.first_answer(version, since) is not None for p in pollers):
        if time.perf_counter() - since > FOLLOW_TIMEOUT_S:
            raise SystemExit(f"not every client saw {what} (version {version}) {FOLLOW_TIMEOUT_S:.0f} s after it "
                             f"was made; errors: {[e for p in pollers for e in p.samples][:3]}")
        time.sleep(0.001)  # polling interval of the shared state, not a wait for an outcome


def timed(pollers: list[Poller], change_fn: Any, version: str, what: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    revision = change_fn().revision
    returned = time.perf_counter()
    wait_all(pollers, version, t0, what)
    # Each client's first answer by `version` (wait_all made sure there is one), from the call's return.
    after = [(p.first_answer(version, t0) or returned) - returned for p in pollers]
    return {"revision": revision, "call_s": returned - t0, "first_s": min(after), "all_s": max(after),
            "per_connection_s": after}


def rollbacks(deployment: str, port: int, server_pid: int, workers: int, per_worker: int, count: int,
              versions: list[int], bodies: Path, seed: int) -> dict[str, Any]:
    import shipyard

    old, new = (f"{MODEL_NAME}/{v}" for v in versions)
    old_v, new_v = (str(v) for v in versions)
    request = build_request("POST", f"/predict/{deployment}", "127.0.0.1", port, first_body(bodies))
    conns, by_worker = connect(port, server_pid, workers, per_worker, request)
    pollers = [Poller(c, request) for c in conns]
    rng = random.Random(seed)
    cycles: list[dict[str, Any]] = []
    started = time.perf_counter()
    for p in pollers:
        p.start()
    try:
        wait_all(pollers, old_v, started, "the starting version")
        for _ in range(count):
            # A random pause before each change, so that it lands anywhere in the servers' poll interval.
            time.sleep(rng.uniform(0.0, 1.0))
            promote = timed(pollers, lambda: shipyard.deployments.canary(deployment, new, 100), new_v,
                            f"the promotion of {new}")
            time.sleep(rng.uniform(0.0, 1.0))
            rollback = timed(pollers, lambda: shipyard.deployments.rollback(deployment), old_v,
                             f"the rollback to {old}")
            cycles.append({"promote": promote, "rollback": rollback})
    finally:
        for p in pollers:
            p.halt.set()
        for p in pollers:
            p.join(15)
            p.conn.close()
    elapsed = time.perf_counter() - started
    requests = [p.requests for p in pollers]
    return {
        "deployment": deployment,
        "workers": workers,
        "connections": len(pollers),
        "connections_by_process": {str(k): v for k, v in by_worker.items()},
        "processes_covered": len([k for k in by_worker if k != -1]),
        "count": count,
        "cycles": cycles,
        "elapsed_s": elapsed,
        "requests": sum(requests),
        "client_interval_s": elapsed * len(pollers) / sum(requests) if sum(requests) else None,
        "errors": sum(p.errors for p in pollers),
        "error_samples": [e for p in pollers for e in p.samples][:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="deployments benchmark: Shipyard side")
    parser.add_argument("command", choices=["setup", "change", "rollbacks"])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--bodies", required=True, help="folder of the request bodies")
    parser.add_argument("--deployment", default=ROUTED)
    parser.add_argument("--op", choices=["shadow", "unshadow"])
    parser.add_argument("--model", help="the shadow's version, e.g. serving-bench/2")
    parser.add_argument("--port", type=int)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-worker", type=int, default=2, help="polling connections per worker process")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--versions", type=int, nargs=2, default=[1, 2], help="the old and the new version")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    os.environ["SHIPYARD_WORKSPACE"] = str(workdir)
    os.chdir(workdir)
    if args.command == "setup":
        emit(setup(workdir, Path(args.bodies)))
    elif args.command == "change":
        emit(change(args.op, args.deployment, args.model, args.port, Path(args.bodies)))
    else:
        emit(rollbacks(args.deployment, args.port, args.server_pid, args.workers, args.per_worker, args.count,
                       args.versions, Path(args.bodies), args.seed))


if __name__ == "__main__":
    main()
