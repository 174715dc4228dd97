"""Step parameters by content, for cache keys. A literal argument of a step is hashed through the
serialisation its kind has as a step output (JSON, .npy, Parquet, a model flavor's file), never through
repr(): numpy and pandas shorten their reprs, so two arrays differing in the middle would share a key.
What that serialisation cannot tell apart hashes alike (a tuple or a list in an object column of a
DataFrame, a function a model refers to by name), as it would come back alike from the blob store."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from shipyard.errors import ValidationError

# A parameter whose JSON is at most this long is recorded (in the key parts and the run's params) as
# itself; a longer one by its kind, size and SHA-256, so no tag or param outgrows its limit.
INLINE_CHARS = 1000
# Reasons show a value itself up to this length, else its type, size and digest.
SHOWN_CHARS = 200
_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Fingerprint:
    """A parameter by content: what the cache key holds, and how runs and miss reasons show it."""

    kind: str  # json | python | npy | parquet | model:<flavor> | unhashed
    sha256: str  # "" only for an unhashed value, which a step with caching off may take
    size: int  # bytes hashed
    type: str  # the value's type, for messages
    value: Any = None  # the value itself when `inline`
    inline: bool = False  # small JSON, recorded and logged as itself

    def record(self) -> dict[str, Any]:
        """How the key parts record a parameter that is not inline."""
        return {"kind": self.kind, "sha256": self.sha256, "size": self.size, "type": self.type}

    @classmethod
    def from_record(cls, record: Any, *, inline: bool) -> Fingerprint:
        """Back from recorded key parts: an inline value (re-hashed) or a record."""
        if inline:
            return _json_fingerprint(record)
        return cls(str(record.get("kind")), str(record.get("sha256")), int(record.get("size") or 0),
                   str(record.get("type")))

    def logged(self) -> Any:
        """The value of a run's param: the value itself when small JSON, else what it was hashed as."""
        if self.inline:
            return self.value
        if self.kind == "unhashed":
            return f"{self.type} (not hashed by content)"
        return f"{self.type}, {self.kind} of {self.size} bytes, sha256 {self.sha256}"

    def __str__(self) -> str:
        # A run's params hold str(value), so a fingerprint logged as a param shows as `logged`.
        return str(self.logged())

    def shown(self) -> str:
        """The parameter in a miss reason: the value when short, else its type, size and digest."""
        if self.inline:
            text = repr(self.value)
            if len(text) <= SHOWN_CHARS:
                return text
        if self.kind == "unhashed":
            return f"{self.type} (not hashed)"
        return f"{self.type} of {self.size:,} bytes (sha256 {self.sha256[:12]}…)"


def fingerprint(value: Any, *, step: str, name: str, cached: bool = True) -> Fingerprint:
    """VALUE by content. A value without a faithful serialisation is refused when the step is cached
    (the error says what to pass instead) and recorded as unhashed when it is not."""
    if _is_json(value):
        return _json_fingerprint(value)
    try:
        tagged = _tagged(value)
    except _NotPlain:
        pass
    else:
        return _digest("python", json.dumps(tagged, sort_keys=True).encode(), value)
    if _is_array(value):
        from shipyard.pipelines.materialize import npy_bytes

        return _digest("npy", npy_bytes(value), value)
    if _is_frame(value):
        from shipyard.pipelines.materialize import parquet_bytes

        try:
            data = parquet_bytes(value)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for columns it cannot hold
            if not cached:
                return Fingerprint("unhashed", "", 0, type_name(value))
            raise refusal(step, name, value, f" (Parquet cannot hold it: {type(exc).__name__}: {exc})") from exc
        return _digest("parquet", data, value)
    from shipyard.pipelines.materialize import model_flavor

    flavor = model_flavor(value)
    if flavor is not None:
        return _model_fingerprint(value, flavor)
    if not cached:
        return Fingerprint("unhashed", "", 0, type_name(value))
    raise refusal(step, name, value)


def hashable(value: Any) -> bool:
    """Whether `fingerprint` can hash VALUE by content, judged from its type (no serialising): a step's
    parameters are checked when the pipeline is traced, before any step runs."""
    if _is_json(value) or _is_array(value) or _is_frame(value):
        return True
    try:
        _tagged(value)
        return True
    except _NotPlain:
        pass
    from shipyard.pipelines.materialize import model_flavor

    return model_flavor(value) is not None


def refusal(step: str, name: str, value: Any, detail: str = "") -> ValidationError:
    # Pickle is no way out: cloudpickle writes module-level functions and classes by name, so a value
    # whose code changed keeps its bytes and would hit the cache with a stale result; and the pickle of
    # equal sets or dicts varies with the hash seed and insertion order.
    return ValidationError(
        f"Step '{step}' takes parameter '{name}' of type {type_name(value)}, which cannot be hashed by content "
        f"for the step's cache key{detail}. Pass it as the output of a step (a step may return any value), "
        "or as JSON (numbers, strings, lists, dicts), a NumPy array, a pandas DataFrame or a scikit-learn, "
        "XGBoost, LightGBM or ONNX model; or turn caching off for this step with @step(cache=False)."
    )


def type_name(value: Any) -> str:
    """The value's type as people import it: `pandas.DataFrame` rather than `pandas.core.frame.DataFrame`."""
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    top = cls.__module__.split(".")[0]
    if getattr(sys.modules.get(top), cls.__qualname__, None) is cls:
        return f"{top}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _json_fingerprint(value: Any) -> Fingerprint:
    # As outputs write JSON, except that NaN and infinities are allowed: they serialise exactly.
    text = json.dumps(value, sort_keys=True)
    data = text.encode()
    inline = len(text) <= INLINE_CHARS
    return Fingerprint("json", hashlib.sha256(data).hexdigest(), len(data), type_name(value),
                       value if inline else None, inline)


def _digest(kind: str, data: bytes, value: Any) -> Fingerprint:
    return Fingerprint(kind, hashlib.sha256(data).hexdigest(), len(data), type_name(value))


def _model_fingerprint(value: Any, flavor: Any) -> Fingerprint:
    from shipyard.store.blobs import hash_file

    with tempfile.TemporaryDirectory(prefix="shipyard-param-") as tmp:
        path = Path(tmp) / flavor.file_name
        flavor.save(value, path)
        digest, size = hash_file(path)
    return Fingerprint(f"model:{flavor.name}", digest, size, type_name(value))


def _is_json(value: Any) -> bool:
    """JSON that reads back as the same Python value: exact types (a bool, an IntEnum or a numpy float
    is not an int or a float here), lists, and dicts with string keys."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list:
        return all(_is_json(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_json(v) for k, v in value.items())
    return False


class _NotPlain(Exception):
    pass


def _tagged(value: Any) -> Any:
    """Plain Python values JSON cannot tell apart (tuples, sets, non-string keys, bytes, paths, numpy
    scalars) as JSON with their type spelled out, so that different values never encode alike."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in (list, tuple):
        return [kind.__name__, [_tagged(v) for v in value]]
    if kind in (set, frozenset):
        return [kind.__name__, sorted((_tagged(v) for v in value), key=_canonical)]
    if kind is dict:
        items = [[_tagged(k), _tagged(v)] for k, v in value.items()]
        return ["dict", sorted(items, key=lambda item: _canonical(item[0]))]
    if kind is bytes:
        return ["bytes", value.hex()]
    if isinstance(value, PurePath):
        return ["path", kind.__name__, str(value)]
    if kind.__module__ == "numpy":
        import numpy as np

        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return ["numpy", value.dtype.str, value.tobytes().hex()]
    raise _NotPlain


def _canonical(encoded: Any) -> str:
    return json.dumps(encoded, sort_keys=True)


def _is_array(value: Any) -> bool:
    # Exactly ndarray: np.save keeps an array's data but drops what subclasses add (a masked array's mask).
    if "numpy" not in sys.modules:
        return False
    import numpy as np

    return type(value) is np.ndarray and not value.dtype.hasobject


def _is_frame(value: Any) -> bool:
    if "pandas" not in sys.modules:
        return False
    import pandas as pd

    return isinstance(value, pd.DataFrame)
