"""Serving: registered models behind HTTP (the Open Inference Protocol V2 and MLflow-compatible routes).

Import `shipyard.serving.app.create_app`; this package needs the `serve` extra (starlette, uvicorn)."""
