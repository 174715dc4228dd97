"""Closed-loop HTTP/1.1 load generator, standard library only, run as a process of its own.

    python loadgen.py --port 8080 --method POST --path /invocations --bodies b.jsonl --clients 8 \
        --warmup 2 --duration 10

Each client is a thread with one persistent (keep-alive) connection that
sends a request, reads the whole response and sends the next one, cycling
through the bodies (one JSON document per line). The HTTP exchange is a few
lines over a raw socket (a prebuilt request, the response read by
Content-Length or chunked encoding) rather than ``http.client``, whose
header parsing costs more than the work of the smallest requests: on a
2-core machine the generator shares the CPUs with the server, so it is kept
lean, and it is the same for every server. All clients connect, warm up for
``--warmup`` seconds on those connections, then requests started during the
next ``--duration`` seconds are measured. A response that is not 2xx, a
broken connection and a timeout count as errors (the connection is then
opened again). Prints one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
ERROR_SAMPLES = 3


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolation percentile of ``values`` (q in [0, 100]), like numpy's default; None when empty."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    data = sorted(latencies)
    return {
        "p50_s": percentile(data, 50),
        "p90_s": percentile(data, 90),
        "p99_s": percentile(data, 99),
        "max_s": data[-1] if data else None,
        "mean_s": sum(data) / len(data) if data else None,
    }


def build_request(method: str, path: str, host: str, port: int, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: shipyard-bench\r\nAccept: */*\r\n"
    if body is None:
        return (head + "\r\n").encode("latin-1")
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


class Connection:
    """One keep-alive HTTP/1.1 connection: ``exchange(request)`` -> (status, body)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address, self.timeout = (host, port), timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def open(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf.clear()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.open()
        assert self.sock is not None
        self.sock.sendall(request)
        head = self._until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
        status = int(parts[1])
        length, chunked, close = None, False, parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            body = self._chunked()
        elif length is not None:
            body = self._exactly(length)
        else:  # no length: the body runs to the end of the connection
            body = self._to_end()
            close = True
        if close:
            self.close()
        return status, body

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        start = 0
        while (end := self.buf.find(marker, start)) < 0:
            start = max(0, len(self.buf) - len(marker) + 1)
            self._fill()
        out = bytes(self.buf[:end])
        del self.buf[:end + len(marker)]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self._until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._exactly(2)

    def _to_end(self) -> bytes:
        assert self.sock is not None
        while data := self.sock.recv(262144):
            self.buf += data
        out = bytes(self.buf)
        self.buf.clear()
        return out


class ClientStats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.statuses: dict[str, int] = {}
        self.samples: list[str] = []
        self.last_end = 0.0
        self.warmup_requests = 0

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(what[:300])


def run_load(host: str, port: int, requests: list[bytes], *, clients: int, warmup: float, duration: float,
             timeout: float = 60.0) -> dict[str, Any]:
    """Drive ``clients`` keep-alive connections for warmup + duration seconds; measured figures as a dict."""
    stats = [ClientStats() for _ in range(clients)]
    conns = [Connection(host, port, timeout) for _ in range(clients)]
    for conn in conns:
        conn.open()
    window: dict[str, float] = {}
    ready = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        conn, st = conns[i], stats[i]
        ready.wait()
        start, end = window["start"], window["end"]
        k = i
        while True:
            request = requests[k % len(requests)]
            k += 1
            t0 = time.perf_counter()
            if t0 >= end:
                break
            measured = t0 >= start
            try:
                status, body = conn.exchange(request)
            except (OSError, ValueError) as exc:
                conn.close()
                if measured:
                    st.error(f"{type(exc).__name__}: {exc}")
                    st.last_end = time.perf_counter()
                continue
            t1 = time.perf_counter()
            if not measured:
                st.warmup_requests += 1
                continue
            st.last_end = t1
            key = str(status)
            st.statuses[key] = st.statuses.get(key, 0) + 1
            if 200 <= status < 300:
                st.latencies.append(t1 - t0)
            else:
                st.error(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window["start"] = now + warmup
    window["end"] = now + warmup + duration
    ready.wait()
    for t in threads:
        t.join()
    latencies = [x for st in stats for x in st.latencies]
    errors = sum(st.errors for st in stats)
    elapsed = max([st.last_end for st in stats] + [window["end"]]) - window["start"]
    statuses: dict[str, int] = {}
    for st in stats:
        for key, n in st.statuses.items():
            statuses[key] = statuses.get(key, 0) + n
    return {
        "clients": clients,
        "warmup_s": warmup,
        "duration_s": duration,
        "elapsed_s": elapsed,
        "warmup_requests": sum(st.warmup_requests for st in stats),
        "ok": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "error_samples": [s for st in stats for s in st.samples][:ERROR_SAMPLES],
        "requests_per_s": len(latencies) / elapsed if elapsed > 0 else None,
        "per_client_ok": [len(st.latencies) for st in stats],
        **latency_summary(latencies),
    }


def read_bodies(path: Path) -> list[bytes]:
    return [line.encode() for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="GET", choices=["GET", "POST"])
    parser.add_argument("--path", required=True)
    parser.add_argument("--bodies", type=Path, help="POST bodies, one JSON document per line")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured requests first")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured requests")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout per request")
    args = parser.parse_args(argv)
    if args.method == "POST" and args.bodies is None:
        parser.error("--method POST needs --bodies FILE")
    bodies: list[bytes | None] = list(read_bodies(args.bodies)) if args.bodies else [None]
    requests = [build_request(args.method, args.path, args.host, args.port, b) for b in bodies]
    result = run_load(args.host, args.port, requests, clients=args.clients, warmup=args.warmup,
                      duration=args.duration, timeout=args.timeout)
    result["request_bytes"] = sum(len(r) for r in requests) / len(requests)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
