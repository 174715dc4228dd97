"""A third-party Open Inference Protocol client (tritonclient's HTTP client) against a real `shipyard serve`
process: health, metadata, inference with every way of sending columns, and errors as the client sees them.

The client lives in its own virtualenv, <repo>/.venv-oip-client, made on demand from the pins in
oip-client-requirements.txt (it would move packages of the project's venv); oip_client_script.py runs
there and prints what the client saw as JSON. Without the package index the tests skip, unless
SHIPYARD_REQUIRE_SERVICES=1."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import training_frame
from tests.services import free_port, unavailable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REQUIREMENTS = HERE / "oip-client-requirements.txt"
SCRIPT = HERE / "oip_client_script.py"
VENV = REPO / ".venv-oip-client"

# Installing the client from the package index may take longer than one test's default budget.
pytestmark = pytest.mark.timeout(900)


# -- the client's virtualenv --------------------------------------------------------------------------------
def pins() -> dict[str, str]:
    """name -> version of every `name==version` line of the requirements (extras dropped)."""
    found = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[name.split("[")[0].strip()] = version.strip()
    return found


def venv_python() -> Path:
    return VENV / "bin" / "python"


def unmet_pins() -> list[str]:
    """The pins the client's venv does not satisfy (all of them when it has no working python)."""
    wanted = pins()
    probe = ("import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nhave = {}\n"
             "for name in json.loads(sys.argv[1]):\n    try:\n        have[name] = version(name)\n"
             "    except PackageNotFoundError:\n        pass\nprint(json.dumps(have))")
    try:
        done = subprocess.run([str(venv_python()), "-c", probe, json.dumps(list(wanted))], capture_output=True,
                              text=True, timeout=120)
    except OSError:
        return [f"{name}=={version}" for name, version in wanted.items()]
    have = json.loads(done.stdout) if done.returncode == 0 else {}
    return [f"{name}=={version} (have {have.get(name, 'none')})" for name, version in wanted.items()
            if have.get(name) != version]


def package_index() -> str:
    """The index pip installs from: PIP_INDEX_URL, pip's configured index-url, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                capture_output=True, text=True, timeout=120)
    return configured.stdout.strip() if configured.returncode == 0 and configured.stdout.strip() \
        else "https://pypi.org/simple"


def index_unreachable(index: str) -> str | None:
    """Why the index cannot be reached, or None when it answers (any HTTP status is an answer)."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/tritonclient/", timeout=30):  # noqa: S310
            return None
    except urllib.error.HTTPError:
        return None
    except OSError as exc:
        return str(exc)


def run_pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv_python()), "-m", "pip", *args, "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=840)


@contextmanager
def venv_lock() -> Iterator[None]:
    """One test process at a time builds the venv (the lock lives outside the repository)."""
    key = hashlib.sha256(str(VENV).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"shipyard-oip-client-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def oip_client() -> Path:
    """The python of the client's venv, made or brought up to the pins when needed (idempotent)."""
    with venv_lock():
        unmet = unmet_pins()
        if not unmet:
            return venv_python()
        index = package_index()
        why = index_unreachable(index)
        if why is not None:
            unavailable(f"The package index {index} is unreachable ({why}), so the Open Inference Protocol "
                        f"client cannot be installed into {VENV}")
        if VENV.exists() and subprocess.run([str(venv_python()), "-c", "pass"], capture_output=True).returncode:
            shutil.rmtree(VENV)  # a venv whose python does not run (moved or half-made) is made again
        if not venv_python().exists():
            made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True,
                                  timeout=300)
            assert made.returncode == 0, f"python -m venv {VENV} failed:\n{made.stderr}"
        installed = run_pip("install", "--quiet", "-r", str(REQUIREMENTS))
        assert installed.returncode == 0, f"pip install -r {REQUIREMENTS} failed:\n{installed.stderr[-4000:]}"
        unmet = unmet_pins()
        assert not unmet, f"{VENV} does not match {REQUIREMENTS} after installing: {', '.join(unmet)}"
        checked = run_pip("check")
        assert checked.returncode == 0, f"pip check in {VENV}:\n{checked.stdout}"
        return venv_python()


# -- the served models ------------------------------------------------------------------------------------
def loan_frame(rows: int, seed: int) -> pd.DataFrame:
    """Columns of every datatype the client sends: INT64, FP64, FP32, BYTES and BOOL."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, rows), "income": rng.normal(50_000, 10_000, rows),
                         "score": rng.uniform(0, 1, rows).astype("float32"),
                         "region": rng.choice(["north", "south", "east"], rows), "member": rng.random(rows) > 0.5})


LOAN_DATATYPES = {"age": "INT64", "income": "FP64", "score": "FP32", "region": "BYTES", "member": "BOOL"}


def register_models(root: Path) -> None:
    """credit/1 and credit/2 (string classes; staging -> 2) and loan/1 (mixed column types, integer classes)."""
    import shipyard
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = training_frame()
    for c in (1.0, 0.1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(x, y)
        shipyard.models.register("credit", model, input_example=x.head(), signature_frame=x, workspace=root)
    shipyard.models.set_alias("credit/2", "staging", workspace=root)

    loans = loan_frame(120, seed=1)
    approved = (((loans["income"] > 50_000) & loans["member"]) | (loans["score"] > 0.9)).astype("int64")
    encode = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["region"])],
                               remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression(max_iter=2000)).fit(loans, approved)
    shipyard.models.register("loan", model, input_example=loans.head(), signature_frame=loans, workspace=root)


@contextmanager
def serving(root: Path, refs: list[str], env: dict[str, str]) -> Iterator[str]:
    """`shipyard serve` on a free loopback port until it is ready; stopped on leaving."""
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "shipyard"), "serve", *refs, "--port", str(port)],
                               cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"127.0.0.1:{port}"
    try:
        for _ in range(600):  # until ready; a bounded count of polls, not a time budget
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"shipyard serve exited {process.returncode}: {output}")
            try:
                with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=30) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("shipyard serve never became ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def seen(oip_client: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the client saw of a server with credit (default 1, and 2) and loan, and what the models predict."""
    import shipyard
    from shipyard.context import close_all

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SHIPYARD_") and name not in ("SHIPYARD_REQUIRE_SERVICES",
                                                             "SHIPYARD_TEST_POSTGRES_URL"):
                patch.delenv(name)
        patch.setenv("SHIPYARD_USER", "tester")
        root = shipyard.init_workspace(tmp_path_factory.mktemp("oip") / "ws")
        patch.chdir(root)
        try:
            register_models(root)
            loans = loan_frame(5, seed=7)
            credit = pd.DataFrame({"age": [30, 52, 41], "income": [65000.0, 31000.5, 49999.0]})
            loan, credit_1, credit_2 = (shipyard.models.load(ref, workspace=root)
                                        for ref in ("loan/1", "credit/1", "credit/2"))
            expected = {"loan": loan.predict(loans).tolist(), "loan_proba": loan.predict_proba(loans).tolist(),
                        "credit_1": credit_1.predict(credit).tolist(),
                        "credit_1_proba": credit_1.predict_proba(credit).tolist(),
                        "credit_2": credit_2.predict(credit).tolist()}
        finally:
            close_all()
        plan = {
            "columns": {"model": "loan", "version": "1",
                        "tensors": [{"name": c, "datatype": d, "values": loans[c].tolist()}
                                    for c, d in LOAN_DATATYPES.items()]},
            "matrix": {"model": "credit", "version": "2", "datatype": "FP64", "rows": credit.to_numpy().tolist()},
        }
        with serving(root, ["loan/1", "credit/1", "credit@staging"], os.environ.copy()) as url:
            ran = subprocess.run([str(oip_client), str(SCRIPT)], input=json.dumps({"url": url, **plan}),
                                 capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, f"the client script failed:\n{ran.stderr[-4000:]}"
    return {"report": json.loads(ran.stdout), "expected": expected, "plan": plan}


def refused(answer: Any, status: str, *words: str) -> None:
    """The client raised for an error status, with the server's {"error": ...} message naming `words`."""
    assert isinstance(answer, dict) and answer.get("status") == status, answer
    message = answer["message"]
    assert not message.startswith("an exception occurred in the client"), message  # the body had no "error"
    for word in words:
        assert word in message, (word, message)


# -- health and metadata ----------------------------------------------------------------------------------
def test_server_live_ready_and_metadata(seen: dict[str, Any]) -> None:
    from shipyard._version import __version__

    report = seen["report"]
    assert report["server_live"] is True and report["server_ready"] is True
    assert report["server_metadata"] == {"name": "shipyard", "version": __version__, "extensions": []}
    assert report["server_ready_after"] is True  # every refused request below left the server ready


def test_model_metadata_and_readiness_with_and_without_version(seen: dict[str, Any]) -> None:
    report = seen["report"]
    loan = report["model_metadata"]["loan@"]
    assert loan["name"] == "loan" and loan["versions"] == ["1"] and loan["platform"] == "sklearn_skops"
    assert [(t["name"], t["datatype"], t["shape"]) for t in loan["inputs"]] == [
        ("age", "INT64", [-1]), ("income", "FP64", [-1]), ("score", "FP64", [-1]), ("region", "BYTES", [-1]),
        ("member", "BOOL", [-1])]
    assert loan["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                               {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}]
    default, second = report["model_metadata"]["credit@"], report["model_metadata"]["credit@2"]
    assert (default["name"], default["outputs"][0]["datatype"]) == ("credit", "BYTES")
    assert default["versions"] == second["versions"] == ["1", "2"]
    assert report["model_ready"] == {"loan@": True, "credit@": True, "credit@2": True, "missing@": False,
                                     "credit@99": False}
    refused(report["unknown_model_metadata"], "404", "'missing'", "credit, loan")
    refused(report["unknown_version_metadata"], "404", "'99'", "1, 2")


def test_model_metadata_lists_every_version_that_may_be_requested(seen: dict[str, Any]) -> None:
    metadata = seen["report"]["model_metadata"]
    assert metadata["credit@"]["versions"] == metadata["credit@2"]["versions"] == ["1", "2"]


# -- inference --------------------------------------------------------------------------------------------
def test_infer_one_tensor_per_column_of_every_datatype(seen: dict[str, Any]) -> None:
    answer, expected = seen["report"]["infer_columns"], seen["expected"]
    rows = len(expected["loan"])
    assert (answer["model_name"], answer["model_version"]) == ("loan", "1"), answer
    assert answer["order"] == ["predict", "predict_proba"]
    predict, proba = answer["outputs"]["predict"], answer["outputs"]["predict_proba"]
    assert (predict["datatype"], predict["shape"], predict["values"]) == ("INT64", [rows], expected["loan"])
    assert (proba["datatype"], proba["shape"], proba["numpy_shape"]) == ("FP64", [rows, 2], [rows, 2])
    np.testing.assert_allclose(proba["values"], expected["loan_proba"], rtol=1e-12)
    assert 0 < sum(expected["loan"]) < rows  # both classes occur, so a constant answer would fail

    as_columns = seen["report"]["infer_columns_versioned"]  # [rows, 1] tensors, by version
    assert as_columns["model_version"] == "1" and as_columns["order"] == ["predict"]
    assert as_columns["outputs"]["predict"]["values"] == expected["loan"]


def test_infer_one_2d_tensor_by_default_version_and_by_version(seen: dict[str, Any]) -> None:
    report, expected = seen["report"], seen["expected"]
    default = report["infer_matrix"]
    assert (default["model_name"], default["model_version"]) == ("credit", "1"), default
    assert default["order"] == ["predict_proba", "predict"]  # the order asked for
    predict = default["outputs"]["predict"]
    assert (predict["datatype"], predict["values"]) == ("BYTES", expected["credit_1"])
    np.testing.assert_allclose(default["outputs"]["predict_proba"]["values"], expected["credit_1_proba"], rtol=1e-12)
    versioned = report["infer_matrix_versioned"]
    assert versioned["model_version"] == "2", versioned
    assert versioned["outputs"]["predict"]["values"] == expected["credit_2"]


def test_requested_outputs(seen: dict[str, Any]) -> None:
    report, expected = seen["report"], seen["expected"]
    proba = report["infer_proba_only"]
    assert proba["order"] == ["predict_proba"]
    np.testing.assert_allclose(proba["outputs"]["predict_proba"]["values"], expected["loan_proba"], rtol=1e-12)
    refused(report["unknown_output"], "400", "'explain'", "predict, predict_proba")
    # Asked for nothing, the client sends no "outputs"; the server answers at least the prediction.
    default = report["infer_default_outputs"]
    assert default["outputs"]["predict"]["values"] == expected["loan"]


def test_no_requested_outputs_answers_every_output(seen: dict[str, Any]) -> None:
    assert seen["report"]["infer_default_outputs"]["order"] == ["predict", "predict_proba"]


def test_request_id_and_parameters(seen: dict[str, Any]) -> None:
    report = seen["report"]
    assert report["infer_columns"]["id"] == "cols-1" and report["infer_matrix"]["id"] == "matrix-1"
    assert report["infer_columns_versioned"]["id"] is None  # none given, none made up
    # Parameters of each JSON kind (string, number, boolean) are taken; they describe the request, so the
    # response does not repeat them (nor the client's own binary_data_output when it asks for no outputs).
    assert report["infer_columns"]["parameters"] is None
    assert report["infer_default_outputs"]["parameters"] is None


# -- errors -----------------------------------------------------------------------------------------------
def test_errors_reach_the_client_with_their_status_and_message(seen: dict[str, Any]) -> None:
    report = seen["report"]
    refused(report["unknown_model_infer"], "404", "'missing'", "credit, loan")
    refused(report["unknown_version_infer"], "404", "'99'")
    refused(report["shape_mismatch"], "400", "'age'", "shape")
    refused(report["matrix_wrong_width"], "400", "'features'", "age, income")
    refused(report["uncastable_column"], "422", "'age'")
    binary = report["binary_input"]  # the binary tensor extension is not advertised, so it is refused
    assert isinstance(binary, dict) and binary.get("status", "").startswith("4"), binary


def test_binary_input_is_refused_by_name(seen: dict[str, Any]) -> None:
    refused(seen["report"]["binary_input"], "400", "binary", "binary_data=False")
