"""`shipyard serve`: registered models over HTTP (one process)."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.workspace import context


def serve(
    refs: Annotated[list[str], typer.Argument(help="Model versions or aliases to serve: credit/3, credit@champion.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1,
                                                help="Largest request body accepted (413 past it).")]
    = 10 * 1024 * 1024,
) -> None:
    """Serve models over HTTP: Open Inference Protocol V2, MLflow-compatible /invocations and /predict/NAME."""
    import uvicorn

    from shipyard.serving.app import create_app

    app = create_app(context(), refs, max_body_bytes=max_body_bytes)
    failures = app.state.served.failures
    if not app.state.served.models:  # nothing to serve: say why instead of a server that is never ready
        from shipyard.errors import ValidationError

        raise ValidationError("No model could be loaded, so there is nothing to serve. "
                              + " ".join(f"{ref}: {why}" for ref, why in failures.items()))
    for ref, why in failures.items():
        typer.echo(f"Could not load {ref} (the others serve; /v2/health/ready says 503): {why}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
