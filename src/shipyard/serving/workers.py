"""Running the app: one process, or a supervisor and N forked workers that share one loaded copy of each model.

The models are loaded once, in the supervisor, before it forks; the workers inherit them copy-on-write (the
garbage collector's bookkeeping is frozen first so that collecting does not copy the pages back). Every worker
runs uvicorn on the one listening socket the supervisor opened. SIGTERM or SIGINT to the supervisor asks each
worker to shut down gracefully: it stops accepting, finishes the requests in flight and drains its prediction
log. A worker that dies otherwise is replaced from the same loaded models."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.models.loading import LoadedModel
    from shipyard.serving.app import Served, ServeOptions

#: A worker that dies this soon after it started, this many times running, stops the server.
CRASH_SECONDS = 2.0
CRASH_LIMIT = 3


@dataclass
class Listener:
    host: str
    port: int
    workers: int = 1
    graceful_seconds: float = 30.0
    access_log: bool = False
    log_level: str = "info"


def open_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with it on, a response written in two parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from shipyard.errors import BackendError

        raise BackendError(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --port or --host, "
                           "or stop what is using it.", host=host, port=port) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(ctx: Context, served: Served, options: ServeOptions, listener: Listener) -> int:
    """Serve until told to stop; the exit code: 0 after a requested shutdown, 1 when workers kept crashing."""
    sock = open_socket(listener.host, listener.port)
    host, port = sock.getsockname()[:2]
    print(f"Serving {', '.join(sorted(served.models))} on http://{host}:{port} "
          f"({listener.workers} worker{'s' if listener.workers != 1 else ''})", file=sys.stderr, flush=True)
    if listener.workers == 1:
        run_worker(ctx, served, options, listener, sock)
        return 0
    return supervise(ctx, served, options, listener, sock)


def run_worker(ctx: Context, served: Served, options: ServeOptions, listener: Listener, sock: socket.socket) -> None:
    import uvicorn

    from shipyard.serving.app import build_app

    config = uvicorn.Config(build_app(served, ctx, options), lifespan="on", log_level=listener.log_level,
                            access_log=listener.access_log,
                            timeout_graceful_shutdown=listener.graceful_seconds)  # type: ignore[arg-type]
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again for the handler that was
    # there before it: a no-op, so that a requested shutdown that went well exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def supervise(ctx: Context, served: Served, options: ServeOptions, listener: Listener, sock: socket.socket) -> int:
    import gc

    from shipyard.serving.metrics import process_exited

    prepare_to_fork(ctx, served, options)
    gc.collect()
    gc.freeze()  # the inherited objects stay out of the collector's way, so their pages stay shared
    children: dict[int, float] = {}
    stopping = False
    crashes = 0

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(listener.workers):
            children[fork_worker(ctx, served, options, listener, sock)] = time.monotonic()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None:
                continue
            process_exited(pid)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            crashes = crashes + 1 if time.monotonic() - started < CRASH_SECONDS else 0
            if crashes >= CRASH_LIMIT:
                print(f"Worker {pid} exited ({code}) right after starting, {crashes} times running; stopping.",
                      file=sys.stderr, flush=True)
                stop(signal.SIGTERM, None)
                continue
            print(f"Worker {pid} exited ({code}); starting another.", file=sys.stderr, flush=True)
            children[fork_worker(ctx, served, options, listener, sock)] = time.monotonic()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    return 1 if crashes >= CRASH_LIMIT else 0


def prepare_to_fork(ctx: Context, served: Served, options: ServeOptions) -> None:
    """Import in the supervisor what every worker would otherwise import for itself, so the modules' pages
    are shared too."""
    import prometheus_client  # noqa: F401
    import starlette.applications  # noqa: F401
    import uvicorn.main  # noqa: F401

    from shipyard.serving.app import build_app

    for module in ("uvloop", "httptools", "uvicorn.protocols.http.httptools_impl", "uvicorn.loops.uvloop",
                   "uvicorn.lifespan.on", "shipyard.serving.predlog", "pyarrow.parquet"):
        try:
            __import__(module)
        except ImportError:
            pass
    build_app(served, ctx, options)  # imports everything the routes need; this app is thrown away
    for versions in served.models.values():
        for model in versions.values():
            warm_up(model)


def warm_up(model: LoadedModel) -> None:
    """Predict once on a made-up row and build (not write) its prediction-log batch, so that what the first
    request would import or cache lazily (scikit-learn's feature-name checks, pyarrow's pandas conversion) is
    in the supervisor's memory, shared, instead of once per worker. Any failure is the made-up row's, not the
    model's: it is ignored."""
    import time

    from shipyard.serving.batches import build_batches
    from shipyard.serving.predlog import Prediction

    try:
        frame = example_row(model)
        prepared = model.prepare(frame)
        predictions = model.flavor.predict(model.native, prepared)
        build_batches([Prediction("warm-up", time.time(), model.version.model, model.version.version, "predict",
                                  prepared, predictions, model.flavor.predict_proba(model.native, prepared), 0.0)])
    except Exception:  # noqa: BLE001 - a warm-up that fails costs memory, nothing else
        pass


def example_row(model: LoadedModel) -> pd.DataFrame:
    """One row of plausible values from the signature: the smallest value seen, the first category."""
    import pandas as pd

    values: dict[str, Any] = {}
    for spec in model.signature.inputs if model.signature is not None else []:
        if spec.kind in ("integer", "float"):
            values[spec.name] = spec.minimum if spec.minimum is not None else 0
        elif spec.kind == "boolean":
            values[spec.name] = False
        elif spec.kind == "datetime":
            values[spec.name] = pd.Timestamp(0)
        else:
            values[spec.name] = spec.categories[0] if spec.categories else ""
    return pd.DataFrame([values])


def fork_worker(ctx: Context, served: Served, options: ServeOptions, listener: Listener, sock: socket.socket) -> int:
    """Fork one worker. SIGTERM and SIGINT are held back around the fork, so a stop request reaches the
    supervisor only once the new worker is known to it (and never the supervisor's handler in the child)."""
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)  # a stop that waited is handled now
        return pid
    code = 0
    try:
        os.setpgid(0, 0)  # a terminal's Ctrl+C reaches the supervisor only, which asks each worker once
        for signum in stop_signals:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        _die_with_parent()
        ctx.stores.after_fork()  # pooled connections and clients of the supervisor are not this process's
        run_worker(ctx, served, options, listener, sock)
    except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor's code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """On Linux, a worker gets SIGTERM when its supervisor dies, so none outlives a killed supervisor."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
