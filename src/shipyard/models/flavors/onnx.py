"""ONNX models (an onnx.ModelProto or its serialized bytes), run with onnxruntime on the CPU.

Load returns an onnxruntime.InferenceSession. Predictions are the first output; probabilities the
second output when there is one (skl2onnx's ZipMap list of dicts or a plain (n, k) array).
Column order: a model with one input takes all columns by position, stacked in the frame's order;
a model with several inputs is fed one column per input, by name, so order does not matter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import ValidationError
from shipyard.models.flavors.base import (
    Flavor,
    Task,
    as_1d,
    attach_meta,
    attached_meta,
    check_options,
    imported,
    jsonable,
    match_columns,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROVIDERS = ["CPUExecutionProvider"]
# onnxruntime's element type names and the numpy dtypes a feed is converted to.
DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint64)": "uint64", "tensor(uint32)": "uint32", "tensor(uint16)": "uint16", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(string)": "object",
}
# Node attributes in which ONNX-ML classifiers (and skl2onnx's ZipMap) list their class labels.
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
_PROTOBUF_START = b"\x08"  # a serialized ModelProto begins with field 1 (ir_version), a varint


class OnnxFlavor(Flavor):
    name: ClassVar[str] = "onnx"
    file_name: ClassVar[str] = "model.onnx"
    pickle_based: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx", "numpy")

    def handles(self, model: Any) -> bool:
        if isinstance(model, (bytes, bytearray)):
            return model.startswith(_PROTOBUF_START)  # cheap sniff; save() parses it for real
        onnx = imported("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        check_options(self.name, options)
        self._check_handles(model)
        proto = _proto(model)
        data = proto.SerializeToString()
        session = _session(data)  # also proves onnxruntime can run it before anything is stored
        path.write_bytes(data)
        inputs = [_io(i) for i in session.get_inputs()]
        return {
            "flavor": self.name,
            "format": "onnx",
            "class": "onnx.ModelProto",
            "inputs": inputs,
            "outputs": [_io(o) for o in session.get_outputs()],
            "task": _task(session),
            "classes": _classes(proto),
            "columns": "by_position" if len(inputs) == 1 else "by_name",
            "feature_names": None if len(inputs) == 1 else [i["name"] for i in inputs],
            "n_features": _n_features(session),
            "producer": proto.producer_name or None,
            "opsets": {op.domain or "ai.onnx": op.version for op in proto.opset_import},
            "pickle_based": False,
        }

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return attach_meta(_session(str(path)), {"classes": meta.get("classes")})

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        session = _as_session(model)
        first = session.get_outputs()[0].name
        return as_1d(session.run([first], _feed(session, frame))[0])

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        session = _as_session(model)
        outputs = session.get_outputs()
        if len(outputs) < 2:
            return None
        return _probabilities(session.run([outputs[1].name], _feed(session, frame))[0])

    def describe(self, model: Any) -> dict[str, Any]:
        session = _as_session(model)
        info = session.get_modelmeta()
        classes = _classes(_proto(model)) if self.handles(model) else attached_meta(model).get("classes")
        return {
            "class": "onnx.ModelProto",
            "task": _task(session),
            "graph": info.graph_name,
            "producer": info.producer_name or None,
            "params": {"inputs": [_io(i) for i in session.get_inputs()],
                       "outputs": [_io(o) for o in session.get_outputs()]},
            "n_features": _n_features(session),
            "classes": classes,
        }


def _proto(model: Any) -> Any:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load_model_from_string(bytes(model))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise ValidationError(f"These {len(model)} bytes are not a serialized ONNX model: {exc}.") from exc


def _session(source: bytes | str) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(source, providers=PROVIDERS)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception classes
        raise ValidationError(f"onnxruntime cannot run this ONNX model: {exc}") from exc


def _as_session(model: Any) -> Any:
    """The model as a session: loaded models already are one; a ModelProto gets a new session per call."""
    ort = imported("onnxruntime")
    if ort is not None and isinstance(model, ort.InferenceSession):
        return model
    return _session(_proto(model).SerializeToString())


def _io(arg: Any) -> dict[str, Any]:
    return {"name": arg.name, "type": arg.type, "shape": [jsonable(d) for d in (arg.shape or [])]}


def _n_features(session: Any) -> int | None:
    inputs = session.get_inputs()
    if len(inputs) > 1:
        return len(inputs)
    shape = inputs[0].shape or []
    return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None


def _task(session: Any) -> Task:
    """A guess from the outputs: labels plus probabilities, or integer/string labels, mean a classifier."""
    outputs = session.get_outputs()
    if len(outputs) >= 2 and (outputs[1].type.startswith("seq(map") or len(outputs[1].shape or []) == 2):
        return "classification"
    if outputs[0].type in ("tensor(int64)", "tensor(int32)", "tensor(string)"):
        return "classification"
    if len(outputs) == 1 and outputs[0].type in ("tensor(float)", "tensor(double)"):
        return "regression"
    return "unknown"


def _classes(proto: Any) -> list[Any] | None:
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                values = attribute.ints if attribute.name != "classlabels_strings" else attribute.strings
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


def _feed(session: Any, frame: pd.DataFrame) -> dict[str, Any]:
    import numpy as np

    inputs = session.get_inputs()
    if len(inputs) == 1:
        (single,) = inputs
        stacked = match_columns(frame, None, _n_features(session))
        return {single.name: stacked.to_numpy(dtype=_dtype(single))}
    columns = match_columns(frame, [i.name for i in inputs])
    feed = {}
    for arg in inputs:
        values = columns[arg.name].to_numpy(dtype=_dtype(arg))
        feed[arg.name] = values.reshape(-1, 1) if len(arg.shape or []) == 2 else np.asarray(values)
    return feed


def _dtype(arg: Any) -> str:
    try:
        return DTYPES[arg.type]
    except KeyError:
        raise ValidationError(
            f"The ONNX input {arg.name!r} has type {arg.type}, which cannot be fed from a DataFrame column. "
            f"Supported: {', '.join(DTYPES)}."
        ) from None


def _probabilities(output: Any) -> np.ndarray | None:
    import numpy as np

    if isinstance(output, list):  # ZipMap: one {class: probability} dict per row, classes in the same order
        if not output:
            return np.empty((0, 0), dtype=np.float32)
        keys = list(output[0])
        return np.array([[row[k] for k in keys] for row in output])
    array = np.asarray(output)
    return array if array.ndim == 2 else None
