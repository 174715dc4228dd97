"""Driver side: start a model server as a process group of its own, wait until it is ready, measure its
memory and CPU time over its whole process tree (from /proc), and stop it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 180.0  # MLflow's CLI resolves and copies the model before uvicorn starts; a busy box is slow
STOP_TIMEOUT_S = 20.0


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- /proc


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The kB fields of /proc/PID/smaps_rollup ('Rss', 'Pss', ...) in bytes."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    return fields


def parse_stat(text: str) -> tuple[int, int, int]:
    """(ppid, utime + stime in clock ticks, state char as ord) from /proc/PID/stat; the name may hold spaces."""
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), ord(rest[0][0])


def process_tree(root: int, proc: Path = Path("/proc")) -> list[int]:
    """``root`` and every live descendant, found through the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, _, _ = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_memory(root: int) -> dict[str, Any]:
    """PSS and RSS summed over the process tree of ``root`` (bytes), and how many processes it has."""
    pss = rss = 0
    n = 0
    for pid in process_tree(root):
        try:
            fields = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
        except OSError:
            continue
        pss += fields.get("Pss", 0)
        rss += fields.get("Rss", 0)
        n += 1
    return {"pss_bytes": pss, "rss_bytes": rss, "processes": n}


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of the live processes of the tree of ``root``."""
    ticks = 0
    for pid in process_tree(root):
        try:
            ticks += parse_stat(Path(f"/proc/{pid}/stat").read_text())[1]
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- server process


class Server:
    """One server command, started in a new session (its own process group) on 127.0.0.1:port."""

    def __init__(self, label: str, cmd: list[str], *, env: dict[str, str], cwd: Path, port: int,
                 ready_path: str) -> None:
        self.label, self.cmd, self.env, self.cwd, self.port, self.ready_path = label, cmd, env, cwd, port, ready_path
        self.log_path = cwd / f"server-{label}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the server and wait until ``ready_path`` answers 200; returns the seconds it took."""
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.label} exited with {self.proc.returncode} before it was ready:\n"
                                   + self.log_tail())
            try:
                status, _ = http_get(self.port, self.ready_path, timeout=2.0)
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.1)  # polling interval for readiness, not a wait for an outcome
        self.stop()
        raise ServerFailed(f"{self.label} was not ready on port {self.port} after {READY_TIMEOUT_S:.0f} s:\n"
                           + self.log_tail())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it has not ended in STOP_TIMEOUT_S."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        try:  # workers that outlived their parent are still in the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
