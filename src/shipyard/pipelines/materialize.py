"""Step outputs as content-addressed artifacts, by type: DataFrames as Parquet, arrays as .npy,
models through their flavor, JSON-able values as JSON, anything else pickled as a last resort; a
`Stored` reference returned by a step is passed on as the output it refers to, never stored again."""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shipyard.store.blobs import BlobStore


@dataclass(frozen=True)
class Stored:
    """Where an output lives: its digest, how to read it back, its size."""

    digest: str
    kind: str  # parquet | npy | json | model:<flavor> | pickle
    size: int
    meta: dict[str, Any] | None = None  # flavor metadata for models

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stored:
        return cls(data["digest"], data["kind"], data["size"], data.get("meta"))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def parquet_bytes(frame: Any) -> bytes:
    """A DataFrame as Parquet, index included. Equal frames give equal bytes with the same pandas and
    pyarrow: the file holds no timestamp or random id, only their versions (created_by and the pandas
    metadata), which the environment part of a cache key covers as well."""
    sink = io.BytesIO()
    frame.to_parquet(sink, index=True)
    return sink.getvalue()


def npy_bytes(array: Any) -> bytes:
    """An array of a non-object dtype as .npy: a header with dtype, shape and order, then the data."""
    import numpy as np

    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=False)
    return sink.getvalue()


def store_value(blobs: BlobStore, value: Any) -> Stored:
    import numpy as np
    import pandas as pd

    if isinstance(value, Stored):  # a stored input passed on as it is (the model a selection picked)
        if not blobs.exists(value.digest):
            from shipyard.errors import NotFoundError

            raise NotFoundError(f"A step returned the stored output {value.digest}, which is not in the blob "
                                "store; return a Stored that a step received, or the value itself.",
                                digest=value.digest)
        return value
    if isinstance(value, pd.DataFrame):
        info = blobs.put_bytes(parquet_bytes(value))
        return Stored(info.digest, "parquet", info.size)
    if isinstance(value, np.ndarray) and value.dtype != object:
        info = blobs.put_bytes(npy_bytes(value))
        return Stored(info.digest, "npy", info.size)
    if _jsonable(value):
        info = blobs.put_bytes(json.dumps(value, sort_keys=True, allow_nan=False).encode())
        return Stored(info.digest, "json", info.size)
    flavor = model_flavor(value)
    if flavor is not None:
        with tempfile.TemporaryDirectory(prefix="shipyard-step-") as tmp:
            path = Path(tmp) / flavor.file_name
            meta = flavor.save(value, path)
            info = blobs.put_file(path)
        return Stored(info.digest, f"model:{flavor.name}", info.size, meta)
    import cloudpickle

    info = blobs.put_bytes(cloudpickle.dumps(value))
    return Stored(info.digest, "pickle", info.size)


def model_flavor(value: Any) -> Any:
    """The flavor of a model object, or None; plain Python objects are not treated as models."""
    from shipyard.errors import ValidationError
    from shipyard.models.flavors import flavor_for

    module = type(value).__module__.split(".")[0]
    if module not in ("sklearn", "xgboost", "lightgbm", "onnx"):
        return None
    try:
        return flavor_for(value)
    except ValidationError:
        return None


def load_value(blobs: BlobStore, stored: Stored) -> Any:
    """Read an output back, its digest verified first."""
    data = blobs.get_bytes(stored.digest)
    if stored.kind == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if stored.kind == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if stored.kind == "json":
        return json.loads(data)
    if stored.kind.startswith("model:"):
        from shipyard.models.flavors import get_flavor

        flavor = get_flavor(stored.kind.split(":", 1)[1])
        with tempfile.TemporaryDirectory(prefix="shipyard-step-") as tmp:
            path = Path(tmp) / flavor.file_name
            path.write_bytes(data)
            return flavor.load(path, stored.meta or {})
    import cloudpickle

    return cloudpickle.loads(data)  # noqa: S301 - our own output, its digest verified above
