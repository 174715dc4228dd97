"""The HTTP app: load each model by ref (digest-verified) and serve it under its registered name through
the Open Inference Protocol V2 REST routes, MLflow-compatible scoring routes and a plain records route.
Bad input is a 4xx with {"error": "..."}. Predictions run on a thread pool, off the event loop, combined into
micro-batches per model; every answered prediction goes to the prediction log and every request to the
Prometheus metrics.

The app is split in two: `Served` (the loaded models, made once and shared by forked worker processes) and
`Runtime` (runtime.py: threads, batch queues, the prediction log and the metrics, made in each process that
serves). Bodies, errors and the request-id middleware are in http.py."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import ShipyardError, ValidationError
from shipyard.serving.batching import BatchPolicy
from shipyard.serving.codec import (
    column_datatype,
    decode_mlflow_json,
    decode_oip,
    dtype_datatype,
    encode_tensor,
    plain,
    records_frame,
)
from shipyard.serving.http import (
    HTTPProblem,
    Instrumented,
    UnprocessableInput,
    parse_csv,
    parse_json,
    read_body,
)
from shipyard.serving.runtime import DEFAULT_MAX_BODY_BYTES, Runtime, ServeOptions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pandas as pd
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.models.loading import LoadedModel
    from shipyard.models.signature import Signature
    from shipyard.serving.routing import Chosen, Follower, RouteTable

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HTTPProblem", "Runtime", "ServeOptions", "Served", "UnprocessableInput",
           "build_app", "create_app", "load_served"]

SERVER_NAME = "shipyard"


@dataclass
class Served:
    """The models of one app: by name, then by version; the first ref of a name is its default version."""

    models: dict[str, dict[str, LoadedModel]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # ref -> why it did not load
    load_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    follower: Follower | None = None  # serving a deployment: follows its revisions

    def table(self, name: str) -> RouteTable | None:
        """The routes in force when `name` is the deployment served here, else None."""
        follower = self.follower
        if follower is None or name != follower.deployment:
            return None
        table = follower.table
        if table is None or not table.answering:
            raise HTTPProblem(503, f"Deployment '{name}' has no routes in force (revision "
                                   f"{table.revision if table else '?'}); it was deleted or is being changed.")
        return table

    def add(self, model: LoadedModel) -> None:
        name, version = model.version.model, str(model.version.version)
        self.models.setdefault(name, {})[version] = model
        self.defaults.setdefault(name, version)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise HTTPProblem(404, f"Model '{name}' is not served here. Models served: {known}.")
        versions = self.models[name]
        if version is None:
            return versions[self.defaults[name]]
        if version not in versions:
            raise HTTPProblem(404, f"Model '{name}' has no version '{version}' served here. Versions served: "
                                   f"{', '.join(sorted(versions))}.")
        return versions[version]

    def versions(self, name: str) -> list[str]:
        """The versions of `name` that may be asked for by /versions/N, the default first."""
        default = self.defaults[name]
        return [default, *sorted((v for v in self.models[name] if v != default), key=int)]

    @property
    def ready(self) -> bool:
        if self.follower is not None:
            table = self.follower.table
            return not self.failures and table is not None and bool(table.answering)
        return not self.failures and bool(self.models)


def load_models(ctx: Context, refs: list[str]) -> Served:
    """Load each ref; one that fails is recorded (the others still serve) and the server is not ready."""
    from shipyard.models.loading import load_model

    served = Served()
    for ref in refs:
        started = time.perf_counter()
        try:
            model = load_model(ctx, ref)
        except ShipyardError as exc:
            served.failures[ref] = str(exc)
            continue
        served.add(model)
        served.load_seconds[(model.version.model, str(model.version.version))] = time.perf_counter() - started
    return served


def load_deployment(ctx: Context, name: str) -> Served:
    """Load the versions a deployment's revision in force routes to, and follow its later revisions."""
    from shipyard.models.loading import load_model
    from shipyard.serving.routing import Follower

    served = Served()

    def load(ref: str) -> LoadedModel:
        started = time.perf_counter()
        model = load_model(ctx, ref)
        served.add(model)
        served.load_seconds[(model.version.model, str(model.version.version))] = time.perf_counter() - started
        return model

    follower = Follower(ctx, name, {}, load)
    follower.refresh()  # an unknown deployment is a NotFoundError here, before anything serves
    served.follower = follower
    return served


def create_app(ctx: Context, refs: list[str] | None = None, *, deployment: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, batching: BatchPolicy | None = None,
               log_predictions: bool = True, log_sample_rate: float = 1.0) -> Starlette:
    """A Starlette app serving the models `refs` name (a version, `name/3`, or an alias, `name@champion`), or
    a `deployment`'s routes, following its revisions."""
    options = ServeOptions(max_body_bytes, batching or BatchPolicy(), log_predictions, log_sample_rate)
    return build_app(load_served(ctx, refs or [], deployment), ctx, options)


def load_served(ctx: Context, refs: list[str], deployment: str | None) -> Served:
    if (deployment is None) == (not refs):
        raise ValidationError("Serve either model refs (credit/3, credit@champion) or --deployment NAME, not "
                              "both and not neither.")
    return load_deployment(ctx, deployment) if deployment is not None else load_models(ctx, refs)


def build_app(served: Served, ctx: Context | None = None, options: ServeOptions | None = None) -> Starlette:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from shipyard._version import __version__

    options = options or ServeOptions()
    max_body_bytes = options.max_body_bytes
    runtime = Runtime(ctx, served, options)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def mark(request: Request, route: str, model: LoadedModel | None = None) -> None:
        state = request.scope["state"]
        state["route"] = route
        if model is not None:
            state["model"], state["version"] = model.version.model, str(model.version.version)

    async def body_json(request: Request) -> Any:
        if "inference-header-content-length" in request.headers:
            raise HTTPProblem(400, "The request uses the binary tensor data extension (Inference-Header-Content-"
                                   "Length), which this server does not support (see GET /v2 'extensions'); send "
                                   "every tensor as JSON in 'data' (with tritonclient: "
                                   "set_data_from_numpy(..., binary_data=False)).")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise HTTPProblem(415, f"Content-Encoding '{encoding}' is not accepted here; send the body "
                                   "uncompressed.")
        raw = await read_body(request, max_body_bytes)
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind not in ("application/json", ""):
            raise HTTPProblem(415, f"Content type '{kind}' is not accepted here; send application/json.")
        return parse_json(raw)


    # -- Open Inference Protocol V2 ------------------------------------------------------------------
    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        body: dict[str, Any] = {"ready": served.ready}
        if served.failures:
            body["failures"] = served.failures
        return JSONResponse(body, status_code=200 if served.ready else 503)

    def chosen(request: Request) -> LoadedModel:
        """The model a name (and version) asks for; for the deployment, its primary (which decodes requests)."""
        name, version = request.path_params["name"], request.path_params.get("version")
        table = served.table(name)
        if table is None:
            return served.get(name, version)
        if version is not None:
            raise HTTPProblem(404, f"'{name}' is a deployment: it has routes, not versions. Ask a version "
                                   "directly by its model's name: /v2/models/MODEL/versions/N.")
        primary = table.primary
        assert primary is not None
        return primary.model

    def route(request: Request, name: str, frame: pd.DataFrame) -> tuple[Chosen | None, RouteTable | None]:
        """For the deployment: the route this request takes (sticky by a header or an input field)."""
        table = served.table(name)
        if table is None:
            return None, None
        key: Any = None
        if table.sticky_by is not None:
            key = request.headers.get(table.sticky_by)
            if key is None and table.sticky_by in frame.columns and len(frame):
                key = frame[table.sticky_by].iloc[0]
        return table.choose(None if key is None else str(key)), table

    def answered_by(model: LoadedModel, chosen: Chosen | None, table: RouteTable | None) -> dict[str, str]:
        headers = {"x-model-version": model.version.version_id}
        if table is not None and chosen is not None:
            headers.update({"x-deployment": table.deployment, "x-deployment-revision": str(table.revision),
                            "x-deployment-route": chosen.route.label})
        return headers

    async def model_metadata(request: Request) -> Response:
        model = chosen(request)
        table = served.table(request.path_params["name"])
        if table is None:
            return JSONResponse(metadata(model, served.versions(model.version.model), runtime.request_signature(model)))
        described = metadata(model, [str(v) for v in dict.fromkeys(r.version for r in table.routes if r.answers)],
                             runtime.request_signature(model))
        return JSONResponse({**described, "name": table.deployment})

    async def model_ready(request: Request) -> Response:
        model = chosen(request)
        return JSONResponse({"name": request.path_params["name"] if served.table(request.path_params["name"])
                             else model.version.model, "ready": True})

    async def infer(request: Request) -> Response:
        mark(request, "infer")
        model = chosen(request)
        mark(request, "infer", model)
        body = await body_json(request)
        frame, wanted = decode_oip(body, runtime.request_signature(model))
        picked, table = route(request, request.path_params["name"], frame)
        if picked is not None:
            model = picked.model
            mark(request, "infer", model)
        names = outputs_of(model)
        wanted = wanted or names  # none asked for: every output the model produces, as the protocol says
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise HTTPProblem(400, f"Output(s) {', '.join(repr(u) for u in unknown)} are not produced by "
                                   f"model '{model.version.model}'; it produces {', '.join(names)}.")
        computed = tuple(dict.fromkeys(["predict", *wanted]))  # the log keeps predict even when not asked for
        answer = await runtime.answer(request.scope["state"], model, frame, computed, picked, table)
        outputs = [encode_tensor(name, answer.values[name]) for name in wanted]
        response: dict[str, Any] = {"model_name": request.path_params["name"],
                                    "model_version": str(model.version.version), "outputs": outputs}
        if isinstance(body.get("id"), str):
            response["id"] = body["id"]
        return JSONResponse(response, headers=answered_by(model, picked, table))

    # -- MLflow-compatible scoring -----------------------------------------------------------------------
    def only_model() -> LoadedModel:
        if served.follower is not None:  # the deployment is what /invocations scores with
            table = served.table(served.follower.deployment)
            assert table is not None and table.primary is not None
            return table.primary.model
        if len(served.models) != 1:
            names = ", ".join(sorted(served.models)) or "none"
            raise HTTPProblem(400 if served.models else 503,
                              f"/invocations scores with the one model served, but this server has: {names}. "
                              "Use /v2/models/NAME/infer or /predict/NAME.")
        [name] = served.models
        return served.get(name)

    async def invocations(request: Request) -> Response:
        mark(request, "invocations")
        model = only_model()
        mark(request, "invocations", model)
        raw = await read_body(request, max_body_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/csv":
            frame = parse_csv(raw)
        elif kind == "application/json":
            frame = decode_mlflow_json(parse_json(raw), runtime.request_signature(model))
        else:
            raise HTTPProblem(415, f"Content type '{kind or 'none'}' is not accepted by /invocations; send "
                                   "application/json or text/csv.")
        picked, table = route(request, served.follower.deployment, frame) if served.follower else (None, None)
        if picked is not None:
            model = picked.model
            mark(request, "invocations", model)
        answer = await runtime.answer(request.scope["state"], model, frame, ("predict",), picked, table)
        return JSONResponse({"predictions": plain(answer.values["predict"])},
                            headers=answered_by(model, picked, table))

    async def ping(request: Request) -> Response:
        return PlainTextResponse("\n" if served.ready else "not ready\n", status_code=200 if served.ready else 503)

    async def version(request: Request) -> Response:
        return PlainTextResponse(__version__)

    # -- plain records ---------------------------------------------------------------------------------
    async def predict_records(request: Request) -> Response:
        mark(request, "predict")
        name = request.path_params["name"]
        model = chosen(request)
        mark(request, "predict", model)
        frame = records_frame(await body_json(request))
        picked, table = route(request, name, frame)
        if picked is not None:
            model = picked.model
            mark(request, "predict", model)
        answer = await runtime.answer(request.scope["state"], model, frame, ("predict",), picked, table)
        return JSONResponse({"model_name": model.version.model, "model_version": str(model.version.version),
                             "predictions": plain(answer.values["predict"])},
                            headers=answered_by(model, picked, table))

    async def feedback(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from shipyard.serving.feedback import parse_feedback_body, record_feedback

        mark(request, "feedback")
        model = chosen(request)  # for a deployment, feedback is kept under its primary's model name
        mark(request, "feedback", model)
        if ctx is None:
            raise HTTPProblem(503, "This app was built without a workspace, so it cannot store feedback.")
        items = parse_feedback_body(await body_json(request))
        recorded = await run_in_threadpool(record_feedback, ctx, model.version.model, items)
        return JSONResponse({"model_name": model.version.model, "recorded": recorded})

    async def metrics(request: Request) -> Response:
        mark(request, "metrics")
        runtime.refresh()
        body, kind = runtime.metrics.exposition()
        return Response(body, media_type=kind)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        return error(exc.status, str(exc))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        return error(422 if isinstance(exc, UnprocessableInput) else 400, str(exc))

    async def on_shipyard(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ShipyardError)
        return error(exc.status_code, str(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail))

    model_path = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2", server_metadata), Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route(model_path, model_metadata), Route(versioned, model_metadata),
        Route(f"{model_path}/ready", model_ready), Route(f"{versioned}/ready", model_ready),
        Route(f"{model_path}/infer", infer, methods=["POST"]), Route(f"{versioned}/infer", infer, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping), Route("/health", ping),
        Route("/version", version), Route("/predict/{name}", predict_records, methods=["POST"]),
        Route(f"{model_path}/feedback", feedback, methods=["POST"]), Route("/metrics", metrics),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        runtime.start()

        async def refresh_every_second() -> None:
            while True:
                runtime.refresh()
                await asyncio.sleep(1.0)

        refresher = asyncio.get_running_loop().create_task(refresh_every_second())
        try:
            yield
        finally:
            refresher.cancel()
            await runtime.finish_shadows(options.drain_seconds)
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(runtime.close)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        HTTPProblem: on_problem, ValidationError: on_invalid, ShipyardError: on_shipyard, HTTPException: on_http,
    })
    app.state.served = served
    app.state.runtime = runtime
    app.add_middleware(Instrumented, metrics=runtime.metrics)
    return app


def outputs_of(model: LoadedModel) -> list[str]:
    native = model.native
    return ["predict", "predict_proba"] if hasattr(native, "predict_proba") else ["predict"]


def metadata(model: LoadedModel, versions: list[str], request: Signature | None = None) -> dict[str, Any]:
    """The OIP model metadata: its inputs are what a client sends (`request`, default the model's signature;
    for a model enriched from the online store, its entity keys and direct inputs, not the features)."""
    signature = model.signature
    request = request if request is not None else signature
    inputs = [{"name": c.name, "datatype": column_datatype(c.kind), "shape": [-1]}
              for c in (request.inputs if request is not None else [])]
    classes = (signature.output.get("classes") if signature is not None else None) or []
    predict_type = dtype_datatype(signature.output.get("dtype")) if signature is not None else None
    if predict_type is None:  # no predictions recorded: guess from the classes
        predict_type = "BYTES" if any(isinstance(c, str) for c in classes) else (
            "BOOL" if classes and all(isinstance(c, bool) for c in classes) else
            "INT64" if classes and all(isinstance(c, int) for c in classes) else "FP64")
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": predict_type, "shape": [-1]}]
    if "predict_proba" in outputs_of(model):
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes) or -1]})
    return {"name": model.version.model, "versions": versions,
            "platform": f"{model.flavor.name}_{model.version.flavor_meta.get('format', 'shipyard')}",
            "inputs": inputs, "outputs": outputs}
