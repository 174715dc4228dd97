"""The OIP codec alone: request tensors to frames (checked against the protocol's rules) and arrays to tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ValidationError
from shipyard.models.signature import Signature, enforce, infer_signature
from shipyard.serving.codec import decode_oip, dtype_datatype, encode_tensor


@pytest.fixture
def signature() -> Signature:
    return infer_signature(pd.DataFrame({"age": [30, 41], "income": [1.5, None], "region": ["n", "s"],
                                         "member": [True, False]}))


def column(name: str, datatype: str, data: Any, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape if shape is not None else [len(data)], "data": data,
            **extra}


def columns(**replace: dict[str, Any]) -> list[dict[str, Any]]:
    given = {"age": column("age", "INT64", [30, 52]), "income": column("income", "FP64", [65000.0, 31000.5]),
             "region": column("region", "BYTES", ["n", "s"]), "member": column("member", "BOOL", [True, False])}
    return list({**given, **replace}.values())


def refused(body: Any, signature: Signature | None, *words: str) -> str:
    with pytest.raises(ValidationError) as caught:
        decode_oip(body, signature)
    message = str(caught.value)
    for word in words:
        assert word in message, (word, message)
    return message


def test_flat_and_natural_nested_data_give_the_same_frame(signature: Signature) -> None:
    flat = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2, 4], "data": ["30", "1", "n", "1"] * 2}]}
    nested = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2, 4], "data": [["30", "1", "n", "1"]] * 2}]}
    pd.testing.assert_frame_equal(decode_oip(flat, signature)[0], decode_oip(nested, signature)[0])
    as_rows = columns(age=column("age", "INT64", [[30], [52]], [2, 1]))
    pd.testing.assert_frame_equal(decode_oip({"inputs": as_rows}, signature)[0],
                                  decode_oip({"inputs": columns()}, signature)[0])


@pytest.mark.parametrize(("data", "shape", "words"), [
    ([[1.0, 2.0, 3.0], [4.0]], [2, 2], ("'x'", "[2, 2]", "3 items at depth 2")),  # 4 values, ragged rows
    ([[1.0, 2.0], [3.0, 4.0], []], [2, 2], ("3 items at depth 1",)),
    ([[[1.0], [2.0]], [[3.0], [4.0]]], [2, 2], ("nested deeper",)),
    ([[1.0, 2.0], 3.0, 4.0], [2, 2], ("3 items at depth 1",)),
])
def test_nested_data_must_follow_the_shape(data: Any, shape: list[int], words: tuple[str, ...]) -> None:
    refused({"inputs": [{"name": "x", "datatype": "FP64", "shape": shape, "data": data}]}, None, *words)


def test_ragged_column_data_is_refused_not_misread(signature: Signature) -> None:
    refused({"inputs": columns(age=column("age", "INT64", [[30, 52]], [2]))}, signature, "'age'", "depth 1")


@pytest.mark.parametrize(("datatype", "value", "words"), [
    ("FP32", 1e39, ("1e+39", "FP32", "3.402823e+38", "FP64")),
    ("FP16", 70000.0, ("FP16", "65504")),
    ("FP64", 10**400, ("401 digits", "FP64")),  # an integer JSON number too large for any float
    ("FP32", -(10**39), ("40 digits", "FP32")),
], ids=["FP32", "FP16", "FP64-huge-integer", "FP32-integer"])
def test_floats_outside_the_datatype_are_refused(signature: Signature, datatype: str, value: Any,
                                                 words: tuple[str, ...]) -> None:
    refused({"inputs": columns(income=column("income", datatype, [1.0, value]))}, signature, "'income'", *words)


def test_floats_at_the_edge_of_the_datatype_and_non_finite_ones_pass(signature: Signature) -> None:
    largest = float(np.finfo(np.float32).max)
    frame, _ = decode_oip({"inputs": columns(income=column("income", "FP32", [largest, -largest]))}, signature)
    assert frame["income"].dtype == np.float32 and np.isfinite(frame["income"]).all()
    frame, _ = decode_oip({"inputs": columns(income=column("income", "FP64", [float("inf"), float("nan")]))},
                          signature)
    assert np.isinf(frame["income"][0]) and np.isnan(frame["income"][1])


@pytest.mark.parametrize(("body", "words"), [
    ({"id": 42}, ("'id' is 42", "string")),
    ({"id": ["a"]}, ("'id' is ['a']",)),
    ({"parameters": ["binary_data_output"]}, ("The request has 'parameters'", "object")),
    ({"outputs": [{"name": "predict", "parameters": 1}]}, ("Output 'predict' has 'parameters' 1",)),
])
def test_request_fields_of_the_wrong_kind_are_refused(signature: Signature, body: dict[str, Any],
                                                      words: tuple[str, ...]) -> None:
    refused({"inputs": columns(), **body}, signature, *words)


def test_id_parameters_and_output_parameters_of_the_right_kind_pass(signature: Signature) -> None:
    body = {"id": "r1", "parameters": {"note": "x", "limit": 3, "strict": True}, "inputs": columns(),
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}]}
    frame, wanted = decode_oip(body, signature)
    assert wanted == ["predict", "predict_proba"] and len(frame) == 2
    assert decode_oip({"id": None, "inputs": columns()}, signature)[1] is None


def test_input_parameters_must_be_an_object(signature: Signature) -> None:
    refused({"inputs": columns(age=column("age", "INT64", [30, 52], parameters="x"))}, signature,
            "Input 'age' has 'parameters' 'x'")


@pytest.mark.parametrize(("parameters", "extension"), [
    ({"binary_data_size": 16}, "binary tensor data extension"),
    ({"shared_memory_region": "r0", "shared_memory_byte_size": 16}, "shared memory extension"),
])
def test_tensors_sent_outside_data_name_the_extension(signature: Signature, parameters: dict[str, Any],
                                                      extension: str) -> None:
    age = {"name": "age", "datatype": "INT64", "shape": [2], "parameters": parameters}
    refused({"inputs": columns(age=age)}, signature, "'age'", extension, "binary_data=False")


@pytest.mark.parametrize("inputs", [
    [column(name, datatype, []) for name, datatype in
     (("age", "INT64"), ("income", "FP64"), ("region", "BYTES"), ("member", "BOOL"))],
    [{"name": "x", "datatype": "FP64", "shape": [0, 4], "data": []}],
])
def test_no_rows_is_refused(signature: Signature, inputs: list[dict[str, Any]]) -> None:
    refused({"inputs": inputs}, signature, "no rows", "at least one row")


def test_a_2d_tensor_of_the_wrong_width_names_the_columns(signature: Signature) -> None:
    message = refused({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 1], "data": [1, 2]}]},
                      signature, "'x' has 1 column but", "age, income, region, member")
    assert "1 columns" not in message


def test_2d_tensor_columns_take_the_tensors_datatype() -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 2], "data": [1, 2, 3, 4]}]}
    frame, _ = decode_oip(body, None)
    assert frame.dtypes.tolist() == [np.float64, np.float64] and frame.to_numpy().tolist() == [[1, 2], [3, 4]]
    body = {"inputs": [{"name": "x", "datatype": "INT32", "shape": [1, 2], "data": [[7, 8]]}]}
    assert decode_oip(body, None)[0].dtypes.tolist() == [np.int32, np.int32]


def test_nulls_keep_the_column_kind(signature: Signature) -> None:
    body = {"inputs": columns(age=column("age", "INT64", [30, None]), income=column("income", "INT64", [5, None]),
                              member=column("member", "BOOL", [None, True]),
                              region=column("region", "BYTES", ["n", None]))}
    frame, _ = decode_oip(body, signature)
    assert str(frame["age"].dtype) == "Int64" and str(frame["member"].dtype) == "boolean"
    assert pd.isna(frame["region"].tolist()[1])
    # income was nullable in training: whole numbers with a null there reach the model as floats with a NaN.
    income = enforce(signature, frame.assign(age=[30, 52], member=[True, False], region=["n", "s"]))["income"]
    assert income.dtype == np.float64 and income.tolist()[0] == 5.0 and np.isnan(income.tolist()[1])


@pytest.mark.parametrize(("values", "datatype", "data"), [
    (np.array(["yes", "no"], dtype=object), "BYTES", ["yes", "no"]),
    (np.array([1, 0]), "INT64", [1, 0]),
    (np.array([True, False]), "BOOL", [True, False]),
    (np.array([[0.25, np.nan], [np.inf, 1.0]]), "FP64", [0.25, None, None, 1.0]),
    (np.array([0.5], dtype=np.float32), "FP32", [0.5]),
])
def test_encode_tensor(values: np.ndarray, datatype: str, data: list[Any]) -> None:
    assert encode_tensor("out", values) == {"name": "out", "shape": list(values.shape), "datatype": datatype,
                                            "data": data}


@pytest.mark.parametrize(("dtype", "datatype"), [
    ("int64", "INT64"), ("bool", "BOOL"), ("float32", "FP32"), ("object", "BYTES"), ("<U3", "BYTES"),
    ("category", None), (None, None),
])
def test_dtype_datatype(dtype: str | None, datatype: str | None) -> None:
    assert dtype_datatype(dtype) == datatype
