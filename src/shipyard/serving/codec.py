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
#: OIP datatype -> pandas' nullable dtype, for a column with nulls (BYTES keeps None in an object array).
_NULLABLE = {
    "BOOL": "boolean", "INT8": "Int8", "INT16": "Int16", "INT32": "Int32", "INT64": "Int64",
    "UINT8": "UInt8", "UINT16": "UInt16", "UINT32": "UInt32", "UINT64": "UInt64",
    "FP16": "Float32", "FP32": "Float32", "FP64": "Float64",
}
#: Request parameters of Triton's extensions that send a tensor's values outside 'data'.
EXTENSIONS = {"binary_data_size": "the binary tensor data extension",
              "shared_memory_region": "the shared memory extension"}


def column_datatype(kind: str) -> str:
    """The OIP datatype of a signature column kind (text, categories, dates and objects travel as BYTES)."""
    return _KIND_DATATYPES.get(kind, "BYTES")


def dtype_datatype(dtype: str | None) -> str | None:
    """The OIP datatype of a numpy dtype name (e.g. the one recorded for a model's predictions), or None
    when there is none or numpy does not know it."""
    import numpy as np

    if not dtype:
        return None
    try:
        return array_datatype(np.empty(0, dtype=np.dtype(dtype)))
    except TypeError:
        return None


def array_datatype(values: np.ndarray) -> str:
    import numpy as np

    if values.dtype == np.bool_:
        return "BOOL"
    for datatype, dtype in DATATYPES.items():
        if dtype != "object" and values.dtype == np.dtype(dtype):
            return datatype
    return "BYTES"


def _flatten(data: Any, shape: list[int], name: str) -> list[Any]:
    """The row-major values of `data`: flat already, or nested exactly as `shape` says (a ragged or
    differently nested list would put values in the wrong rows, so it is refused)."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    level: list[Any] = [data]
    for depth, width in enumerate(shape):
        below: list[Any] = []
        for node in level:
            if not isinstance(node, list) or len(node) != width:
                found = f"{len(node)} items" if isinstance(node, list) else repr(node)
                raise ValidationError(
                    f"Input '{name}' has shape {shape} but its nested 'data' has {found} at depth {depth + 1} "
                    f"where the shape says {width}; nest the values as the shape says (e.g. [[1, 2], [3, 4]] for "
                    "[2, 2]) or flatten them.", input=name)
            below.extend(node)
        level = below
    if any(isinstance(value, list) for value in level):
        raise ValidationError(f"Input '{name}' has shape {shape} but its 'data' is nested deeper than that; nest "
                              "the values as the shape says or flatten them.", input=name)
    return level


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
    parameters = _parameters(tensor.get("parameters"), f"Input '{name}'")
    if data is None:
        for key, extension in EXTENSIONS.items():
            if key in parameters:
                raise ValidationError(
                    f"Input '{name}' is sent through {extension} (parameter '{key}'), which this server does "
                    "not support; send its values as JSON in 'data' (with tritonclient: "
                    "set_data_from_numpy(..., binary_data=False)).", input=name)
        raise ValidationError(f"Input '{name}' has no 'data'; give its values, flattened or nested.", input=name)
    flat = _flatten(data, shape, name)
    if len(flat) != math.prod(shape):
        raise ValidationError(f"Input '{name}' has shape {shape} ({math.prod(shape)} values) but {len(flat)} "
                              "values in 'data'; make the shape match the data.", input=name)
    _check_values(flat, datatype, name)
    return shape, flat


#: The Python types a JSON value of each datatype may arrive as (None is a null).
_ACCEPTED: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool, type(None)}), "BYTES": frozenset({str, type(None)}),
    **{d: frozenset({int, type(None)}) for d in DATATYPES if d.startswith(("INT", "UINT"))},
    **{d: frozenset({int, float, type(None)}) for d in DATATYPES if d.startswith("FP")},
}


def _check_values(flat: list[Any], datatype: str, name: str) -> None:
    """Every value has the datatype's JSON type and fits its range. Looks at the set of types first (one pass in
    C); the value-by-value loop runs only to name the culprit of a refusal."""
    import numpy as np

    accepted = _ACCEPTED[datatype]
    if not {type(v) for v in flat} <= accepted:
        culprit = next(v for v in flat if type(v) not in accepted)
        raise ValidationError(f"Input '{name}' is {datatype} but holds {culprit!r} "
                              f"({type(culprit).__name__}); send values of that datatype.", input=name)
    if datatype.startswith(("INT", "UINT")):
        ints = [v for v in flat if v is not None]
        info = np.iinfo(DATATYPES[datatype])
        if ints and not (info.min <= min(ints) and max(ints) <= info.max):
            culprit = next(v for v in ints if not info.min <= v <= info.max)
            raise ValidationError(f"Input '{name}' holds {culprit} outside the range of {datatype} "
                                  f"({info.min}..{info.max}); use a wider datatype.", input=name)
    elif datatype.startswith("FP"):
        largest = float(np.finfo(DATATYPES[datatype]).max)
        ints = [v for v in flat if type(v) is int]
        if ints and max(map(abs, ints)) > largest:  # compared exactly: no float conversion
            culprit = next(v for v in ints if abs(v) > largest)
            raise ValidationError(f"Input '{name}' holds an integer of {len(str(abs(culprit)))} digits, "
                                  f"outside the range of {datatype} (±{largest:.7g}).", input=name)
        floats = np.fromiter((v for v in flat if type(v) is float), dtype=np.float64)
        finite = np.abs(floats[np.isfinite(floats)])
        if finite.size and finite.max() > largest:
            culprit = float(floats[np.isfinite(floats)][np.argmax(finite > largest)])
            raise ValidationError(f"Input '{name}' holds {culprit!r}, outside the range of {datatype} "
                                  f"(±{largest:.7g}); use FP64.", input=name)


def _parameters(parameters: Any, where: str) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ValidationError(f"{where} has 'parameters' {parameters!r}; give an object of names to values, "
                              "e.g. {\"note\": \"x\"}.")
    return parameters


def _column(flat: list[Any], datatype: str) -> Any:
    """The values of one column as the datatype says; with nulls, pandas' nullable dtype of that kind."""
    import numpy as np
    import pandas as pd

    if any(v is None for v in flat) and datatype != "BYTES":
        return pd.array(flat, dtype=_NULLABLE[datatype])
    return np.array(flat, dtype=DATATYPES[datatype])


def decode_oip(body: Any, signature: Signature | None) -> tuple[pd.DataFrame, list[str] | None]:
    """The frame of an OIP inference request (one tensor per signature column, or one 2-D tensor with a
    column per signature input) and the output names it asked for (None: the default)."""
    import pandas as pd

    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ValidationError("The request needs 'inputs': a non-empty list of tensors "
                              "({\"name\", \"shape\", \"datatype\", \"data\"}).")
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise ValidationError(f"The request's 'id' is {body['id']!r}; give a string, such as \"42\".")
    _parameters(body.get("parameters"), "The request")
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
            raise ValidationError(f"Input '{name}' has {width} column{'s' if width != 1 else ''} but the model "
                                  f"expects {len(columns)}: {', '.join(columns)}.", input=name)
        _some_rows(rows, name, shape)
        labels = columns if columns is not None else list(range(width))
        frame = pd.DataFrame({label: _column(flat[j::width], tensors[0]["datatype"])
                              for j, label in enumerate(labels)}, columns=labels)
    else:
        data: dict[str, Any] = {}
        shapes: dict[str, list[int]] = {}
        for tensor in tensors:
            name = tensor["name"]
            if name in data:
                raise ValidationError(f"Input '{name}' is given twice; give each input once.", input=name)
            shape, flat = _values(tensor, name)
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise ValidationError(f"Input '{name}' has shape {shape}; a column input is [rows] or "
                                      "[rows, 1].", input=name)
            data[name] = _column(flat, tensor["datatype"])
            shapes[name] = shape
        if len({shape[0] for shape in shapes.values()}) > 1:
            raise ValidationError("The inputs have different numbers of rows: "
                                  f"{', '.join(f'{k}={v[0]}' for k, v in shapes.items())}; give every column "
                                  "the same number.")
        first = next(iter(shapes))
        _some_rows(shapes[first][0], first, shapes[first])
        frame = pd.DataFrame(data)
    return frame, _requested_outputs(body.get("outputs"))


def _some_rows(rows: int, name: str, shape: list[int]) -> None:
    if rows == 0:
        raise ValidationError(f"Input '{name}' has shape {shape}: no rows to predict on; send at least one row.",
                              input=name)


def _requested_outputs(outputs: Any) -> list[str] | None:
    """The names asked for; their parameters (tritonclient's binary_data among them) change nothing, since
    every output is answered as JSON."""
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise ValidationError("'outputs' must be a list of objects with a string 'name', e.g. "
                              "[{\"name\": \"predict\"}].")
    for output in outputs:
        _parameters(output.get("parameters"), f"Output '{output['name']}'")
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
            columns = value.get("columns")
            if columns is not None and (not isinstance(columns, list)
                                        or not all(isinstance(c, str) for c in columns)):
                raise ValidationError(f"'dataframe_split' has 'columns' {columns!r}; give a list of column "
                                      "names (strings).")
            return has_rows(pd.DataFrame(value["data"], columns=columns), kind)
        if isinstance(value, dict):  # inputs/instances as {column: [values]}
            return has_rows(pd.DataFrame({str(k): v if isinstance(v, list) else [v] for k, v in value.items()}), kind)
        if not isinstance(value, list):
            raise ValidationError(f"'{kind}' must be a list of records, got {type(value).__name__}.")
        if all(isinstance(r, dict) for r in value):
            return has_rows(pd.DataFrame.from_records(value), kind)
        columns = signature.columns if signature is not None else None
        return has_rows(pd.DataFrame(value, columns=columns), kind)
    except ValidationError:
        raise
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"'{kind}' does not make a table: {exc}. Give rows of equal length, one value "
                              "per column.") from None


def has_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    if len(frame) == 0:
        raise ValidationError(f"'{where}' has no rows to predict on; send at least one row.")
    return frame


def records_frame(body: Any) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(body, list) or not body or not all(isinstance(r, dict) for r in body):
        raise ValidationError("The body must be a non-empty JSON list of records, e.g. "
                              "[{\"age\": 41, \"income\": 52000}].")
    return pd.DataFrame.from_records(body)
