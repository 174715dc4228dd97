"""Request bodies to DataFrames and predictions to JSON: the Open Inference Protocol V2 tensors and the
MLflow scoring formats. Every problem raises ValidationError naming the input; the app maps it to 400."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.models.signature import Signature

#: OIP datatype -> numpy dtype name.
DATATYPES = {
    "BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
_KIND_DATATYPES = {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}


def column_datatype(kind: str) -> str:
    """The OIP datatype of a signature column kind (text, categories, dates and objects travel as BYTES)."""
    return _KIND_DATATYPES.get(kind, "BYTES")


def array_datatype(values: np.ndarray) -> str:
    import numpy as np

    if values.dtype == np.bool_:
        return "BOOL"
    for datatype, dtype in DATATYPES.items():
        if dtype != "object" and values.dtype == np.dtype(dtype):
            return datatype
    return "BYTES"


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item, where) if isinstance(item, list) else [item])
    return flat


def _values(tensor: dict[str, Any], name: str) -> tuple[list[int], list[Any]]:
    """The checked shape and flat data of one request tensor."""
    import numpy as np

    shape, datatype, data = tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ValidationError(f"Input '{name}' has shape {shape!r}; give a list of non-negative integers, "
                              "e.g. [3] or [3, 4].", input=name)
    if datatype not in DATATYPES:
        raise ValidationError(f"Input '{name}' has datatype {datatype!r}; expected one of "
                              f"{', '.join(DATATYPES)}.", input=name)
    if data is None:
        raise ValidationError(f"Input '{name}' has no 'data'; give its values, flattened or nested.", input=name)
    flat = _flatten(data, name)
    if len(flat) != math.prod(shape):
        raise ValidationError(f"Input '{name}' has shape {shape} ({math.prod(shape)} values) but {len(flat)} "
                              "values in 'data'; make the shape match the data.", input=name)
    for value in flat:
        if value is None:
            continue  # a null: the signature decides whether the column may have one
        if datatype == "BOOL":
            ok = isinstance(value, bool)
        elif datatype == "BYTES":
            ok = isinstance(value, str)
        elif datatype.startswith(("INT", "UINT")):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ValidationError(f"Input '{name}' is {datatype} but holds {value!r} "
                                  f"({type(value).__name__}); send values of that datatype.", input=name)
        if datatype.startswith(("INT", "UINT")):
            info = np.iinfo(DATATYPES[datatype])
            if not info.min <= value <= info.max:
                raise ValidationError(f"Input '{name}' holds {value} outside the range of {datatype} "
                                      f"({info.min}..{info.max}); use a wider datatype.", input=name)
    return shape, flat


def _column(flat: list[Any], datatype: str) -> Any:
    import numpy as np
    import pandas as pd

    if any(v is None for v in flat):
        return pd.array(flat, dtype="Float64") if datatype.startswith("FP") else np.array(flat, dtype=object)
    return np.array(flat, dtype=DATATYPES[datatype])


def decode_oip(body: Any, signature: Signature | None) -> tuple[pd.DataFrame, list[str] | None]:
    """The frame of an OIP inference request (one tensor per signature column, or one 2-D tensor with a
    column per signature input) and the output names it asked for (None: the default)."""
    import pandas as pd

    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ValidationError("The request needs 'inputs': a non-empty list of tensors "
                              "({\"name\", \"shape\", \"datatype\", \"data\"}).")
    tensors = body["inputs"]
    if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tensors):
        raise ValidationError("Every item of 'inputs' must be an object with a string 'name'.")
    columns = signature.columns if signature is not None else None
    if len(tensors) == 1 and (columns is None or tensors[0]["name"] not in columns):
        name = tensors[0]["name"]
        shape, flat = _values(tensors[0], name)
        if len(shape) != 2:
            raise ValidationError(f"Input '{name}' is not a model column, so it must be one 2-D tensor "
                                  f"[rows, columns]; its shape is {shape}.", input=name)
        rows, width = shape
        if columns is not None and width != len(columns):
            raise ValidationError(f"Input '{name}' has {width} columns but the model expects {len(columns)}: "
                                  f"{', '.join(columns)}.", input=name)
        matrix = [flat[i * width:(i + 1) * width] for i in range(rows)]
        frame = pd.DataFrame(matrix, columns=columns if columns is not None else range(width))
    else:
        data: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for tensor in tensors:
            name = tensor["name"]
            if name in data:
                raise ValidationError(f"Input '{name}' is given twice; give each input once.", input=name)
            shape, flat = _values(tensor, name)
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise ValidationError(f"Input '{name}' has shape {shape}; a column input is [rows] or "
                                      "[rows, 1].", input=name)
            data[name] = _column(flat, tensor["datatype"])
            lengths[name] = shape[0]
        if len(set(lengths.values())) > 1:
            raise ValidationError("The inputs have different numbers of rows: "
                                  f"{', '.join(f'{k}={v}' for k, v in lengths.items())}; give every column "
                                  "the same number.")
        frame = pd.DataFrame(data)
    return frame, _requested_outputs(body.get("outputs"))


def _requested_outputs(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise ValidationError("'outputs' must be a list of objects with a string 'name', e.g. "
                              "[{\"name\": \"predict\"}].")
    return [o["name"] for o in outputs]


def encode_tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    """One OIP response tensor, row-major and flattened; non-finite floats become null."""
    datatype = array_datatype(values)
    data = values.reshape(-1).tolist()
    if datatype.startswith("FP"):
        data = [v if v is None or math.isfinite(v) else None for v in data]
    elif datatype == "BYTES":
        data = [v if isinstance(v, str) or v is None else str(v) for v in data]
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": data}


def plain(values: np.ndarray) -> list[Any]:
    """Predictions as JSON values (non-finite floats as null)."""
    return [v if not isinstance(v, float) or math.isfinite(v) else None for v in values.tolist()]


def decode_mlflow_json(body: Any, signature: Signature | None) -> pd.DataFrame:
    """The frame of an MLflow scoring request: dataframe_split, dataframe_records, instances or inputs."""
    import pandas as pd

    formats = ("dataframe_split", "dataframe_records", "instances", "inputs")
    given = [f for f in formats if isinstance(body, dict) and f in body]
    if len(given) != 1:
        raise ValidationError(f"The body must be a JSON object with exactly one of {', '.join(formats)}; "
                              f"got {', '.join(given) or 'none'}.")
    kind, value = given[0], body[given[0]]
    try:
        if kind == "dataframe_split":
            if not isinstance(value, dict) or not isinstance(value.get("data"), list):
                raise ValidationError("'dataframe_split' needs 'columns' and 'data' (a list of rows).")
            return pd.DataFrame(value["data"], columns=value.get("columns"))
        if isinstance(value, dict):  # inputs/instances as {column: [values]}
            return pd.DataFrame({str(k): v if isinstance(v, list) else [v] for k, v in value.items()})
        if not isinstance(value, list):
            raise ValidationError(f"'{kind}' must be a list of records, got {type(value).__name__}.")
        if all(isinstance(r, dict) for r in value):
            return pd.DataFrame.from_records(value)
        columns = signature.columns if signature is not None else None
        return pd.DataFrame(value, columns=columns)
    except ValidationError:
        raise
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"'{kind}' does not make a table: {exc}. Give rows of equal length, one value "
                              "per column.") from None


def records_frame(body: Any) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(body, list) or not body or not all(isinstance(r, dict) for r in body):
        raise ValidationError("The body must be a non-empty JSON list of records, e.g. "
                              "[{\"age\": 41, \"income\": 52000}].")
    return pd.DataFrame.from_records(body)
