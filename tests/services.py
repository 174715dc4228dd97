"""Real services for tests: PostgreSQL and Redis (configured by URL) and a moto S3 server started on loopback.

When a service is unreachable its tests skip with the reason, unless SHIPYARD_REQUIRE_SERVICES=1
(set by CI), where they fail instead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

POSTGRES_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRED:
        pytest.fail(f"{reason} (SHIPYARD_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database; yields a URL whose search_path points at it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_URL)
    schema = f"sy_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        engine.dispose()
        unavailable(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        from shipyard.context import close_all

        close_all()
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def redis_client() -> Any:
    """A client of the test Redis server (REDIS_URL), checked to answer; skips (or fails) when it does not."""
    try:
        import redis
    except ModuleNotFoundError:
        unavailable("the redis package is not installed; install the test extras: pip install -e '.[test]'")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    return client


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        if not exe.exists():
            unavailable("moto_server is not installed; install the test extras: pip install -e '.[test]'")
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)  # noqa: S310 (loopback)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        unavailable(f"moto_server did not start on {self.endpoint}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def new_bucket(self) -> str:
        import boto3

        name = f"shipyard-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1").create_bucket(Bucket=name)
        return name
