"""`shipyard serve`: registered models over HTTP, in one process or in N workers sharing the loaded models."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from shipyard.cli.workspace import context


def serve(
    refs: Annotated[Optional[list[str]], typer.Argument(
        help="Model versions or aliases to serve: credit/3, credit@champion.")] = None,
    deployment: Annotated[Optional[str], typer.Option(
        "--deployment", help="Serve a deployment's routes (primary, canary, shadow, A/B) and follow its "
                             "revisions without restarting.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Worker processes; they share one loaded copy of each model.")] = 1,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1,
                                                help="Largest request body accepted (413 past it).")]
    = 10 * 1024 * 1024,
    max_batch_rows: Annotated[int, typer.Option("--max-batch-rows", min=0,
                                                help="Rows combined into one model call; 0 turns batching off.")]
    = 64,
    max_batch_wait_ms: Annotated[float, typer.Option("--max-batch-wait-ms", min=0.0,
                                                     help="How long an idle model waits for more requests to "
                                                          "batch with (0: answer at once).")] = 0.0,
    log_sample_rate: Annotated[float, typer.Option("--log-sample-rate", min=0.0, max=1.0,
                                                   help="Share of requests written to the prediction log.")]
    = 1.0,
    prediction_log: Annotated[bool, typer.Option("--prediction-log/--no-prediction-log",
                                                 help="Write predictions to the prediction log.")] = True,
    graceful_seconds: Annotated[float, typer.Option("--graceful-seconds", min=0.0,
                                                    help="On shutdown, how long to wait for requests in flight, "
                                                         "and then for the prediction log to be written.")]
    = 30.0,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request on stderr.")] = False,
) -> None:
    """Serve models over HTTP: Open Inference Protocol V2, MLflow-compatible /invocations, /predict/NAME and
    Prometheus /metrics."""
    import os
    import shutil
    import tempfile

    from shipyard.errors import ValidationError
    from shipyard.serving.batching import BatchPolicy
    from shipyard.serving.metrics import MULTIPROC_ENV

    if log_sample_rate == 0.0 and prediction_log:
        raise ValidationError("--log-sample-rate 0 logs nothing; give a rate above 0 (up to 1), or say "
                              "--no-prediction-log.", log_sample_rate=log_sample_rate)
    own_metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):  # before prometheus-client is imported anywhere
        own_metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="shipyard-metrics-")
    elif os.environ.get(MULTIPROC_ENV):  # a directory of one's own: what an earlier server left must not count
        from pathlib import Path

        for stale in Path(os.environ[MULTIPROC_ENV]).glob("*.db"):
            stale.unlink(missing_ok=True)
    try:
        from shipyard.serving.app import ServeOptions, load_served
        from shipyard.serving.workers import Listener, serve as run

        ctx = context()
        served = load_served(ctx, refs or [], deployment)
        if not served.models:  # nothing to serve: say why instead of a server that is never ready
            raise ValidationError("No model could be loaded, so there is nothing to serve. "
                                  + " ".join(f"{ref}: {why}" for ref, why in served.failures.items()))
        for ref, why in served.failures.items():
            typer.echo(f"Could not load {ref} (the others serve; /v2/health/ready says 503): {why}", err=True)
        options = ServeOptions(max_body_bytes=max_body_bytes,
                               batching=BatchPolicy(max_batch_rows, max_batch_wait_ms / 1000.0),
                               log_predictions=prediction_log, log_sample_rate=log_sample_rate,
                               drain_seconds=graceful_seconds)
        code = run(ctx, served, options, Listener(host, port, workers, graceful_seconds, access_log))
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    if code:
        raise typer.Exit(code)
