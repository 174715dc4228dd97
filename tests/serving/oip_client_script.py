"""Speak to a `shipyard serve` process through tritonclient's HTTP client, a third-party Open Inference
Protocol client, and print what it saw as one JSON object. Run with the client's own virtualenv
(tests/serving/oip-client-requirements.txt), not the project's: it imports nothing from shipyard.

Reads a plan on stdin: {"url": "127.0.0.1:PORT", "columns": {...}, "matrix": {...}} (see test_oip_client.py).
Each check's result is plain JSON; a request the server refused is {"status": "404", "message": "..."}."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

NUMPY = {"BOOL": np.bool_, "INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32,
         "BYTES": np.object_}


def refused(call: Callable[[], Any]) -> Any:
    """The call's result, or the status and message of the error the client raised for the server's answer."""
    try:
        return call()
    except InferenceServerException as exc:
        return {"status": exc.status(), "message": exc.message()}


def tensor(name: str, datatype: str, values: list[Any], shape: list[int] | None = None,
           binary: bool = False) -> httpclient.InferInput:
    array = np.array(values, dtype=NUMPY[datatype])
    if shape is not None:
        array = array.reshape(shape)
    given = httpclient.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array, binary_data=binary)
    return given


def column_tensors(plan: dict[str, Any], as_matrix_columns: bool = False) -> list[httpclient.InferInput]:
    """One tensor per model column; [rows] or, with as_matrix_columns, [rows, 1]."""
    return [tensor(t["name"], t["datatype"], t["values"], [len(t["values"]), 1] if as_matrix_columns else None)
            for t in plan["tensors"]]


def wanted(*names: str) -> list[httpclient.InferRequestedOutput]:
    return [httpclient.InferRequestedOutput(name, binary_data=False) for name in names]


def answer(result: httpclient.InferResult) -> dict[str, Any]:
    response = result.get_response()
    outputs = {}
    for output in response["outputs"]:
        values = result.as_numpy(output["name"])
        if values.dtype == np.object_:
            values = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(values)
        outputs[output["name"]] = {"datatype": output["datatype"], "shape": output["shape"],
                                   "numpy_shape": list(values.shape), "values": values.tolist()}
    return {"id": response.get("id"), "model_name": response["model_name"],
            "model_version": response.get("model_version"), "parameters": response.get("parameters"),
            "order": [o["name"] for o in response["outputs"]], "outputs": outputs}


def main() -> None:
    plan = json.load(sys.stdin)
    client = httpclient.InferenceServerClient(url=plan["url"], network_timeout=120.0)
    columns, matrix = plan["columns"], plan["matrix"]
    cname, mname = columns["model"], matrix["model"]
    rows = len(columns["tensors"][0]["values"])

    def infer(model: str, inputs: list[httpclient.InferInput], outputs: list[httpclient.InferRequestedOutput] | None,
              version: str = "", **options: Any) -> Any:
        return refused(lambda: answer(client.infer(model, inputs, model_version=version, outputs=outputs,
                                                   **options)))

    report: dict[str, Any] = {
        "server_live": client.is_server_live(),
        "server_ready": client.is_server_ready(),
        "server_metadata": client.get_server_metadata(),
        "model_metadata": {f"{m}@{v}": refused(lambda m=m, v=v: client.get_model_metadata(m, v))
                           for m, v in ((cname, ""), (mname, ""), (mname, matrix["version"]))},
        "model_ready": {f"{m}@{v}": client.is_model_ready(m, v)
                        for m, v in ((cname, ""), (mname, ""), (mname, matrix["version"]), ("missing", ""),
                                     (mname, "99"))},
        "unknown_model_metadata": refused(lambda: client.get_model_metadata("missing")),
        "unknown_version_metadata": refused(lambda: client.get_model_metadata(mname, "99")),
        "infer_columns": infer(cname, column_tensors(columns), wanted("predict", "predict_proba"),
                               request_id="cols-1",
                               parameters={"note": "from tritonclient", "limit": 3, "strict": True}),
        "infer_columns_versioned": infer(cname, column_tensors(columns, as_matrix_columns=True),
                                         wanted("predict"), version=columns["version"]),
        "infer_matrix": infer(mname, [tensor("features", matrix["datatype"], matrix["rows"])],
                              wanted("predict_proba", "predict"), request_id="matrix-1"),
        "infer_matrix_versioned": infer(mname, [tensor("features", matrix["datatype"], matrix["rows"])],
                                        wanted("predict"), version=matrix["version"]),
        "infer_default_outputs": infer(cname, column_tensors(columns), None),
        "infer_proba_only": infer(cname, column_tensors(columns), wanted("predict_proba")),
        "unknown_model_infer": infer("missing", column_tensors(columns), wanted("predict")),
        "unknown_version_infer": infer(mname, [tensor("features", matrix["datatype"], matrix["rows"])],
                                       wanted("predict"), version="99"),
        "unknown_output": infer(cname, column_tensors(columns), wanted("predict", "explain")),
        "matrix_wrong_width": infer(mname, [tensor("features", matrix["datatype"],
                                                   [row[:-1] for row in matrix["rows"]])], wanted("predict")),
        "binary_input": infer(cname, [tensor(t["name"], t["datatype"], t["values"], binary=True)
                                      for t in columns["tensors"]], wanted("predict")),
    }

    # A shape that does not match the data: the client checks shapes itself, so it is changed after the data.
    short = column_tensors(columns)
    short[0].set_shape([rows + 1])
    report["shape_mismatch"] = infer(cname, short, wanted("predict"))
    # A value the model cannot take: text where the model has a whole-number column.
    first = columns["tensors"][0]
    words = [tensor(first["name"], "BYTES", [f"n{v}" for v in first["values"]]), *column_tensors(columns)[1:]]
    report["uncastable_column"] = infer(cname, words, wanted("predict"))
    report["server_ready_after"] = client.is_server_ready()
    client.close()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
