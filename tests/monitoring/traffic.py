"""Monitoring fixtures: a loan-approval model trained on a versioned dataset, and traffic written straight into
its prediction log (the same path the server's writer takes), unshifted or shifted."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

import shipyard
from shipyard.context import Context

FEATURES = ["income", "age", "region"]
REGIONS = ["north", "south", "east", "west"]


def loans(n: int, seed: int, *, shift: float = 0.0, flip: float = 0.0) -> pd.DataFrame:
    """`shift` moves income by that many standard deviations; `flip` is the share of labels changed (a new
    relationship between the features and the outcome)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000 + shift * 12_000, 12_000, n)
    age = rng.integers(18, 80, n)
    region = rng.choice(REGIONS, n, p=[0.4, 0.3, 0.2, 0.1])
    score = (income - 50_000) / 12_000 + (age - 45) / 40 + rng.normal(0, 0.3, n)
    label = np.where(score > 0, "yes", "no")
    flipped = rng.random(n) < flip
    label = np.where(flipped, np.where(label == "yes", "no", "yes"), label)
    return pd.DataFrame({"income": income, "age": age, "region": region, "approved": label})


def train(workspace: Path, rows: int = 3000) -> None:
    """loans@1 (the training data) and loans/1, a model whose lineage names it."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = loans(rows, 0)
    shipyard.data.add("loans", data, workspace=workspace)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["region"]), (StandardScaler(), ["income", "age"])),
                          LogisticRegression()).fit(data[FEATURES], data["approved"])
    with shipyard.start_run("train") as run:
        run.log_input("loans@1")
        run.log_model(model, "loans", input_example=data[FEATURES].head(), signature_frame=data[FEATURES])


def log_traffic(ctx: Context, frame: pd.DataFrame, *, version: int = 1, deployment: str | None = None,
                start: float | None = None, per_request: int = 10, prefix: str = "r", errors: int = 0,
                latency_ms: float = 2.0) -> list[str]:
    """Predict `frame` with loans/VERSION and write it into the prediction log as requests of `per_request` rows,
    one a second ending now (or from `start`); the first `errors` requests are logged as failed."""
    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    model = load_model(ctx, f"loans/{version}")
    inputs = frame[FEATURES].reset_index(drop=True)
    predicted, probabilities = model.predict(inputs), model.predict_proba(inputs)
    count = -(-len(inputs) // per_request)
    first = start if start is not None else time.time() - count
    entries, ids = [], []
    for i in range(count):
        rows = slice(i * per_request, (i + 1) * per_request)
        request_id = f"{prefix}{i}"
        failed = i < errors
        entries.append(Prediction(request_id, first + i, "loans", version, "infer", inputs.iloc[rows],
                                  None if failed else predicted[rows], None if failed else probabilities[rows],
                                  latency_ms + (i % 10) * 0.1, deployment=deployment,
                                  deployment_route="primary" if deployment else None,
                                  error="model failed" if failed else None))
        ids.append(request_id)
    for batch in build_batches(entries):
        store_batch(ctx, batch)
    return ids


def send_feedback(ctx: Context, ids: list[str], labels: pd.Series, per_request: int = 10) -> None:
    """The true label of every row of the requests `ids` (rows in the order they were logged)."""
    from shipyard.serving.feedback import FeedbackItem, record_feedback

    items = []
    values = labels.reset_index(drop=True)
    for i, request_id in enumerate(ids):
        for row in range(per_request):
            position = i * per_request + row
            if position < len(values):
                items.append(FeedbackItem(request_id, values.iloc[position], row))
    record_feedback(ctx, "loans", items)
