"""Checks of the serving suite's own parts, run at the start of every run (under a second):
the percentile maths, the /proc parsing, and the load generator against a small local server whose
answers are known (keep-alive, chunked bodies, an error status and a dropped connection).

    .venv/bin/python benchmarks/serving/selfcheck.py
"""

from __future__ import annotations

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Connection, build_request, percentile, run_load  # noqa: E402
from servers import parse_smaps_rollup, parse_stat, process_tree, tree_memory  # noqa: E402

SMAPS_SAMPLE = """55d0c0a4b000-7ffd5f3f9000 ---p 00000000 00:00 0                          [rollup]
Rss:              102400 kB
Pss:               51234 kB
Pss_Anon:          40000 kB
Shared_Clean:      50000 kB
Swap:                  0 kB
Locked:                0 kB
"""


class CheckFailed(AssertionError):
    pass


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


class Handler(BaseHTTPRequestHandler):
    """GET /ok: 200 'ok'; GET /chunked: a chunked body; POST /echo: the body back; /fail: 500; /drop: closes."""

    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.connections.add(id(self.connection))
        if self.path == "/ok":
            self._send(200, b"ok")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked world"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/fail":
            self._send(500, b'{"error": "boom"}')
        elif self.path == "/drop":
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            self._send(404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200 if self.path == "/echo" else 404, body)


def check_percentiles() -> None:
    values = [float(i) for i in range(1, 101)]  # 1..100
    expect(percentile(values, 50) == 50.5, f"p50 of 1..100 is 50.5, got {percentile(values, 50)}")
    expect(abs(percentile(values, 99) - 99.01) < 1e-9, f"p99 of 1..100 is 99.01, got {percentile(values, 99)}")
    expect(percentile([3.0, 1.0, 2.0], 0) == 1.0 and percentile([3.0, 1.0, 2.0], 100) == 3.0, "p0/p100")
    expect(percentile([7.0], 99) == 7.0, "one value")
    expect(percentile([], 50) is None, "no values")


def check_proc_parsing() -> None:
    fields = parse_smaps_rollup(SMAPS_SAMPLE)
    expect(fields["Rss"] == 102400 * 1024 and fields["Pss"] == 51234 * 1024, f"smaps_rollup parse: {fields}")
    ppid, ticks, _ = parse_stat("1234 (a (weird) name) S 77 1234 1234 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 1 0")
    expect(ppid == 77 and ticks == 175, f"stat parse: ppid {ppid}, ticks {ticks}")
    me = os.getpid()
    expect(me in process_tree(os.getppid()), "this process is in its parent's tree")
    mem = tree_memory(me)
    expect(mem["processes"] >= 1 and 0 < mem["pss_bytes"] <= mem["rss_bytes"], f"own memory: {mem}")


def check_loadgen() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = Connection("127.0.0.1", port, timeout=5)
        expect(conn.exchange(build_request("GET", "/ok", "127.0.0.1", port, None)) == (200, b"ok"), "GET /ok")
        expect(conn.exchange(build_request("GET", "/chunked", "127.0.0.1", port, None))
               == (200, b"hello chunked world"), "chunked body")
        body = b'{"x": [1, 2, 3]}' * 5000
        expect(conn.exchange(build_request("POST", "/echo", "127.0.0.1", port, body)) == (200, body), "POST echo")
        conn.close()

        Handler.connections.clear()
        ok = run_load("127.0.0.1", port, [build_request("GET", "/ok", "127.0.0.1", port, None)],
                      clients=3, warmup=0.05, duration=0.3, timeout=5)
        expect(ok["ok"] > 0 and ok["errors"] == 0 and ok["statuses"] == {"200": ok["ok"]}, f"clean run: {ok}")
        expect(len(Handler.connections) == 3, f"3 keep-alive connections, saw {len(Handler.connections)}")
        expect(ok["p50_s"] <= ok["p99_s"] <= ok["max_s"] and ok["requests_per_s"] > 0, f"figures: {ok}")
        expect(all(n > 0 for n in ok["per_client_ok"]), f"every client made requests: {ok['per_client_ok']}")

        failing = [build_request("GET", p, "127.0.0.1", port, None) for p in ("/fail", "/drop")]
        bad = run_load("127.0.0.1", port, failing, clients=1, warmup=0.0, duration=0.2, timeout=5)
        expect(bad["ok"] == 0 and bad["errors"] > 0 and "500" in bad["statuses"], f"errors counted: {bad}")
        expect(any("ConnectionError" in s or "Error" in s for s in bad["error_samples"]),
               f"a dropped connection is an error: {bad['error_samples']}")
    finally:
        server.shutdown()
        server.server_close()


def run_all() -> list[str]:
    checks = [check_percentiles, check_proc_parsing, check_loadgen]
    for check in checks:
        check()
    return [c.__name__ for c in checks]


if __name__ == "__main__":
    try:
        names = run_all()
    except CheckFailed as exc:
        print(f"serving suite self-check failed: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{len(names)} passed, 0 failed")
