"""Request enrichment: a model trained through feature views (its version records `details["features"]`) is
sent only the entity keys and the columns it takes directly; the features it was trained on are read from the
online store by their pinned references (the exact view versions), in one read per request, and joined on
before prediction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import BackendError, NotFoundError, ValidationError
from shipyard.serving.http import HTTPProblem, UnprocessableInput

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.features.online_lookup import OnlineFeatures
    from shipyard.models.loading import LoadedModel
    from shipyard.models.signature import Signature

#: A status column per feature in the logged frame: `FEATURE__status` (present, missing or expired).
STATUS_SUFFIX = "__status"


@dataclass(frozen=True)
class Enrichment:
    """What serving reads for a model trained through feature views."""

    model: str
    features: list[str]  # pinned references, VIEW@V:FEATURE
    columns: dict[str, str]  # per feature column, the view feature's declared type, in the model's order
    entities: list[str]
    timestamp: str  # a request column by this name is each row's request time; else now
    request: Signature  # what a client sends: the entity keys, then the columns the model takes directly

    def enrich(self, ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
        """The request's frame with the features joined: its own columns, then each feature (null where the
        online store has no valid value, as in training), then a status column per feature."""
        import pandas as pd

        for key in self.entities:
            if key not in frame.columns:
                raise UnprocessableInput(
                    f"The request has no column '{key}': model '{self.model}' reads its features from the online "
                    f"store by the entity key(s) {', '.join(self.entities)}. Send '{key}' with each row "
                    f"(inputs: {', '.join(self.request.columns)}).", column=key)
            if frame[key].isna().any():
                raise UnprocessableInput(f"Column '{key}' has an empty entity key at row "
                                         f"{int(frame[key].isna().to_numpy().argmax())}; give every row its key.",
                                         column=key)
        given = [c for c in self.columns if c in frame.columns]
        if given:
            raise UnprocessableInput(
                f"The request gives column(s) {', '.join(repr(c) for c in given)}, which model '{self.model}' reads "
                "from the online store; leave them out and send the entity key(s) "
                f"{', '.join(self.entities)}.", column=given[0])
        at = self._request_times(frame) if self.timestamp in frame.columns else None
        found = read_online(ctx, self.features, frame[self.entities].reset_index(drop=True), at)
        values = found.values[list(self.columns)].set_axis(frame.index)
        status = found.status[list(self.columns)].set_axis(frame.index).astype(str)
        status.columns = [f"{c}{STATUS_SUFFIX}" for c in status.columns]
        return pd.concat([frame, values, status], axis=1)

    def _request_times(self, frame: pd.DataFrame) -> pd.Series:
        """The request's timestamp column as UTC times (naive: UTC): 422 naming the column when it is not."""
        import pandas as pd

        column = frame[self.timestamp]
        problem = None
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            first = column.iloc[0]
            problem = f"numbers such as {first.item() if hasattr(first, 'item') else first!r}"
        else:
            try:
                times = pd.to_datetime(column, utc=True, format="ISO8601")
            except (ValueError, TypeError) as exc:
                problem = f"a value that is not a time ({str(exc).split(',')[0]})"
            else:
                if times.isna().any():
                    problem = f"an empty time at row {int(times.isna().to_numpy().argmax())}"
        if problem is not None:
            raise UnprocessableInput(
                f"Column '{self.timestamp}' is each row's request time (the features are read as they are then), "
                f"but it holds {problem}. Send ISO 8601 times such as \"2026-03-01T12:00:00Z\", or leave the "
                "column out to read the features now.", column=self.timestamp)
        return times


def read_online(ctx: Context, refs: list[str], rows: pd.DataFrame, at: Any) -> OnlineFeatures:
    """One online read of `refs` for the entity rows at `at` (None: now; or one time per row). The store out
    of reach, or not holding a view version the model needs, is a 503; entity keys the store cannot match (a
    wrong type) are a 422 naming the key."""
    from shipyard.features.online_features import get_online

    try:
        return get_online(ctx, refs, rows.to_dict("records"), at=at)  # rows of dicts: the reader's fast path
    except BackendError as exc:
        raise HTTPProblem(503, f"The online feature store cannot be read, so the request cannot be enriched: "
                               f"{exc.message}") from None
    except NotFoundError as exc:
        raise HTTPProblem(503, f"The online feature store does not hold the features this model was trained on, "
                               f"so the request cannot be enriched: {exc.message} (shipyard features materialize "
                               "VIEW@VERSION).") from None
    except ValidationError as exc:
        raise UnprocessableInput(f"The request cannot be enriched from the online store: {exc.message}",
                                 **exc.fields) from None


def enrichment_of(ctx: Context | None, model: LoadedModel) -> Enrichment | None:
    """The enrichment a model version asks for, or None (a model trained without feature views)."""
    from shipyard.models.signature import ColumnSpec, Signature

    recorded = model.version.details.get("features") if isinstance(model.version.details, dict) else None
    if not recorded:
        return None
    columns = dict(recorded["columns"])
    entities = list(recorded["entities"])
    inputs = list(model.signature.inputs) if model.signature is not None else []
    kinds = _entity_kinds(ctx, model, entities)
    by_name = {c.name: c for c in inputs}
    keys = [by_name.get(e) or ColumnSpec(e, kinds.get(e, "string"), "object", False) for e in entities]
    direct = [c for c in inputs if c.name not in columns and c.name not in entities]
    return Enrichment(model.version.model, list(recorded["features"]), columns, entities,
                      str(recorded.get("timestamp") or "event_timestamp"), Signature([*keys, *direct]))


def _entity_kinds(ctx: Context | None, model: LoadedModel, entities: list[str]) -> dict[str, str]:
    """Each entity key's column kind in the data the model was trained on, when that is known."""
    from shipyard.errors import ShipyardError

    if ctx is None or not model.version.dataset_version:
        return {}
    from shipyard.data.versions import get_version

    try:
        schema = get_version(ctx, model.version.dataset_version).table_schema or []
    except ShipyardError:
        return {}
    types = {c["name"]: str(c.get("type", "")) for c in schema}
    kinds = {}
    for entity in entities:
        kind = types.get(entity, "")
        kinds[entity] = ("integer" if kind.startswith(("int", "uint")) else "float" if kind.startswith(("float",
                         "double")) else "boolean" if kind.startswith("bool") else "string")
    return kinds
