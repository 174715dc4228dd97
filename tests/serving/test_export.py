"""`shipyard deploy export`: the Dockerfile pins the recorded environment, the manifests are valid Kubernetes
(checked with kubernetes-validate's schemas), memory comes from the infrastructure gate, the bundled workspace
serves offline, the requirements resolve on the package index, and bad input writes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import shipyard
from shipyard._version import __version__
from shipyard.context import close_all, open_context
from shipyard.errors import ConfigError, IntegrityError, NotFoundError, ValidationError
from shipyard.serving.export import (
    DEFAULT_MEMORY_LIMIT_MIB,
    DEFAULT_MEMORY_REQUEST_MIB,
    Export,
    ExportOptions,
    export,
    measured_peak_mib,
)
from tests.serving.conftest import training_frame
from tests.serving.test_server import post, request, wait_ready
from tests.services import REQUIRED, MotoServer, free_port, postgres_schema, unavailable

ROOT = Path(__file__).resolve().parents[2]
#: The oldest and the newest Kubernetes whose schemas kubernetes-validate ships (autoscaling/v2 is GA since 1.23).
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


def run_export(ref: str, out: Path, **options: Any) -> Export:
    return export(open_context(), ref, out, ExportOptions(**options))


def documents(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((out / "kubernetes").glob("*.yaml"))}


def container(out: Path) -> dict[str, Any]:
    return documents(out)["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]


def serve_command(out: Path) -> list[str]:
    [line] = [line for line in (out / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD "):])


@pytest.mark.parametrize("kubernetes", KUBERNETES_VERSIONS)
def test_the_manifests_are_valid_kubernetes(model_workspace: Path, tmp_path: Path, kubernetes: str) -> None:
    import kubernetes_validate

    out = tmp_path / "deploy"
    run_export("credit@staging", out, namespace="ml-serving")
    found = documents(out)
    assert sorted(found) == ["deployment.yaml", "hpa.yaml", "service.yaml"]
    assert {doc["kind"] for doc in found.values()} == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for doc in found.values():
        kubernetes_validate.validate(doc, kubernetes, strict=True)  # raises on any unknown or mistyped field
        assert doc["metadata"]["namespace"] == "ml-serving"
        assert doc["metadata"]["labels"]["shipyard.dev/model"] == "credit"
        assert doc["metadata"]["labels"]["shipyard.dev/version"] == "2"
    assert found["hpa.yaml"]["apiVersion"] == "autoscaling/v2"


def test_the_validator_rejects_a_broken_manifest(model_workspace: Path, tmp_path: Path) -> None:
    """The check above can fail: a misspelt field and a wrong type are both caught."""
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError as K8sInvalid

    run_export("credit/1", tmp_path / "deploy")
    deployment = documents(tmp_path / "deploy")["deployment.yaml"]
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]
    probe["paht"] = probe.pop("path")
    with pytest.raises(K8sInvalid, match="paht"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    hpa = documents(tmp_path / "deploy")["hpa.yaml"]
    hpa["spec"]["minReplicas"] = "one"
    with pytest.raises(K8sInvalid):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_dockerfile_pins_the_recorded_environment(model_workspace: Path, tmp_path: Path) -> None:
    version = shipyard.models.get("credit@staging")
    out = tmp_path / "deploy"
    done = run_export("credit@staging", out)
    python = version.environment["python"]
    packages = version.environment["packages"]
    assert packages and {"scikit-learn", "numpy"} <= set(packages)
    dockerfile = (out / "Dockerfile").read_text()
    assert f"FROM python:{'.'.join(python.split('.')[:2])}-slim\n" in dockerfile
    assert "-r /tmp/requirements.txt" in dockerfile
    lines = [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == [f"{name}=={packages[name]}" for name in sorted(packages, key=str.lower)] + \
        [f"shipyard-mlops[serve]=={__version__}"]
    assert done.requirements == lines
    # a non-root user by number (so runAsNonRoot can check it), the port, a health check, the server
    assert "USER 10001:10001" in dockerfile and "EXPOSE 8080" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/v2/health/ready" in dockerfile
    assert serve_command(out) == ["shipyard", "serve", "credit/2", "--host", "0.0.0.0", "--port", "8080"]
    spec = documents(out)["deployment.yaml"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"] is True
    probes = spec["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    record = json.loads((out / "shipyard-export.json").read_text())
    assert record["version_id"] == "credit/2" and record["ref"] == "credit@staging"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not the private mode of a temporary folder


GATES = """
gates:
  credit:
    evaluation:
      dataset: holdout@latest
      target: approved
    infrastructure:
      peak_memory_mb: 100000
"""


def test_memory_comes_from_the_infrastructure_gate(model_workspace: Path, tmp_path: Path) -> None:
    from shipyard.gates.gating import run_gates

    x, y = training_frame()
    shipyard.data.add("holdout", x.assign(approved=y))
    (model_workspace / "shipyard.yaml").write_text((model_workspace / "shipyard.yaml").read_text() + GATES)
    ctx = open_context()
    [result] = run_gates(ctx, "credit/2", only=["infrastructure"])
    peak = result.metrics["peak_memory_mb"]
    assert peak > 10
    assert measured_peak_mib(ctx, shipyard.models.get("credit/2")) == peak

    done = run_export("credit/2", tmp_path / "one")
    assert done.warnings == [w for w in done.warnings if "peak memory" not in w]
    assert done.memory_request_mib == -(-peak * 1.25 // 16) * 16
    assert done.memory_limit_mib == -(-peak * 2 // 16) * 16
    resources = container(tmp_path / "one")["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": f"{done.memory_request_mib}Mi"},
                         "limits": {"memory": f"{done.memory_limit_mib}Mi"}}
    assert f"peak {peak:g} MiB" in done.memory_source

    two = run_export("credit/2", tmp_path / "two", workers=2, cpu="2")
    assert two.memory_request_mib == -(-peak * 1.25 * 2 // 16) * 16
    assert serve_command(tmp_path / "two")[-2:] == ["--workers", "2"]
    assert container(tmp_path / "two")["resources"]["requests"]["cpu"] == "2"


def test_without_a_measurement_the_default_memory_and_a_warning(model_workspace: Path, tmp_path: Path) -> None:
    done = run_export("credit/1", tmp_path / "deploy")
    assert (done.memory_request_mib, done.memory_limit_mib) == (DEFAULT_MEMORY_REQUEST_MIB, DEFAULT_MEMORY_LIMIT_MIB)
    assert done.memory_source == "default"
    assert any("no infrastructure gate result" in w and "--memory" in w for w in done.warnings)
    given = run_export("credit/1", tmp_path / "given", memory="1Gi")
    assert (given.memory_request_mib, given.memory_limit_mib) == (1024, 1648)
    assert not any("no infrastructure gate result" in w for w in given.warnings)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def serve_image_workspace(out: Path, processes: list[subprocess.Popen[str]], env: dict[str, str]) -> str:
    """Run the Dockerfile's CMD with its SHIPYARD_WORKSPACE pointing at the folder the image copies."""
    port = free_port()
    command = serve_command(out)
    command[0] = str(Path(sys.executable).parent / "shipyard")
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    process = subprocess.Popen(command, cwd=out.parent, env={**env, "SHIPYARD_WORKSPACE": str(out / "workspace")},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url)
    return url


def test_the_bundled_workspace_serves_the_version_without_the_registry(
        model_workspace: Path, tmp_path: Path, started: list[subprocess.Popen[str]]) -> None:
    x, _ = training_frame()
    expected = shipyard.models.load("credit/2").predict(x.head(3)).tolist()
    out = tmp_path / "deploy"
    run_export("credit@staging", out)
    image_files = sorted(str(p.relative_to(out / "workspace")) for p in (out / "workspace").rglob("*") if p.is_file())
    digest = shipyard.models.get("credit/2").artifact_digest
    assert image_files == [".shipyard/.gitignore", f".shipyard/artifacts/sha256/{digest[:2]}/{digest}",
                           ".shipyard/shipyard.db", "shipyard.yaml"]
    close_all()
    shutil.rmtree(model_workspace / ".shipyard")  # the registry is gone: only the export is left
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    url = serve_image_workspace(out, started, env)
    status, answer = post(f"{url}/predict/credit", x.head(3).to_dict("records"))
    assert status == 200 and answer["predictions"] == expected
    assert json.loads(request(f"{url}/v2/models/credit")[2])["versions"] == ["2"]


def test_shared_registry_reads_the_stores_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer, started: list[subprocess.Popen[str]]) -> None:
    """--registry shared: no model in the image; PostgreSQL and S3 URLs come from the Secret's keys."""
    from sklearn.linear_model import LogisticRegression

    root = shipyard.init_workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    with postgres_schema() as store_url:
        stores = {"SHIPYARD_STORE_URL": store_url, "SHIPYARD_ARTIFACTS_URL": f"s3://{moto.new_bucket()}/artifacts",
                  "SHIPYARD_ARTIFACTS_ENDPOINT_URL": moto.endpoint}
        for key, value in stores.items():
            monkeypatch.setenv(key, value)
        x, y = training_frame()
        shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
        out = tmp_path / "deploy"
        done = run_export("credit/1", out, registry="shared", namespace="ml")
        assert done.secret == "credit-registry"
        assert done.requirements[-1] == f"shipyard-mlops[serve,postgres,s3]=={__version__}"
        assert container(out)["envFrom"] == [{"secretRef": {"name": "credit-registry"}}]
        assert sorted(p.name for p in (out / "workspace").iterdir()) == ["shipyard.yaml"]
        # what the pod gets from the Secret: the same stores, through the environment only
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")} | stores
        url = serve_image_workspace(out, started, env)
        status, answer = post(f"{url}/predict/credit", x.head(2).to_dict("records"))
        assert status == 200 and len(answer["predictions"]) == 2
        for process in started:
            process.terminate()
            process.wait(timeout=30)
        started.clear()


def test_shared_registry_is_refused_for_stores_on_this_machine(model_workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a container can reach.*--registry bundled"):
        run_export("credit/1", tmp_path / "deploy", registry="shared")
    assert not (tmp_path / "deploy").exists()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"namespace": "ML_Serving"}, ValidationError, "Invalid namespace 'ML_Serving'"),
    ({"namespace": "a" * 64}, ValidationError, "Invalid namespace"),
    ({"name": "3credit"}, ValidationError, "Invalid Kubernetes name '3credit'"),
    ({"image": "Credit Model:3"}, ValidationError, "Invalid image reference 'Credit Model:3'"),
    ({"memory": "lots"}, ValidationError, "Invalid memory quantity 'lots'"),
    ({"cpu": "0"}, ValidationError, "Invalid CPU quantity '0'"),
    ({"min_replicas": 4, "max_replicas": 2}, ValidationError, "--min-replicas <= --max-replicas"),
    ({"target_cpu_percent": 0}, ValidationError, "--target-cpu"),
    ({"workers": 0}, ValidationError, "--workers"),
    ({"secret": "creds"}, ValidationError, "goes with --registry shared"),
    ({"wheels": ("missing.whl",)}, ValidationError, "is not a wheel file"),
])
def test_bad_options_are_named_and_nothing_is_written(model_workspace: Path, tmp_path: Path, options: dict[str, Any],
                                                      error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        run_export("credit/1", tmp_path / "deploy", **options)
    assert not (tmp_path / "deploy").exists() and _leftovers(tmp_path) == []


def test_an_unknown_ref_writes_nothing(model_workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no version 9"):
        run_export("credit/9", tmp_path / "new" / "deploy")
    with pytest.raises(NotFoundError, match="No registered model named 'credt'.*Did you mean 'credit'"):
        run_export("credt/1", tmp_path / "new" / "deploy")
    assert not (tmp_path / "new").exists()


def test_a_folder_in_use_is_refused_unless_forced(model_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    run_export("credit/1", out)  # an empty folder is used
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="already exists and is not empty.*--force"):
        run_export("credit/2", out)
    assert (out / "notes.txt").read_text() == "mine" and serve_command(out)[2] == "credit/1"
    run_export("credit/2", out, force=True)
    assert not (out / "notes.txt").exists() and serve_command(out)[2] == "credit/2"
    assert _leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    for inside in (tmp_path / "file", tmp_path / "file" / "deploy"):
        with pytest.raises(ValidationError, match="file is a file"):
            run_export("credit/1", inside)
    for protected in (model_workspace, model_workspace.parent):
        with pytest.raises(ValidationError, match="holds the workspace or the current folder"):
            run_export("credit/1", protected, force=True)
    assert (model_workspace / "shipyard.yaml").is_file()


def test_a_failure_half_way_leaves_the_folder_as_it_was(model_workspace: Path, tmp_path: Path) -> None:
    """A tampered artifact is refused while the bundle is being written: the old export stays whole."""
    out = tmp_path / "deploy"
    run_export("credit/2", out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    digest = shipyard.models.get("credit/1").artifact_digest
    blob = model_workspace / ".shipyard" / "artifacts" / "sha256" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError):
        run_export("credit/1", out, force=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert serve_command(out)[2] == "credit/2" and _leftovers(tmp_path) == []


# ---- the requirements resolve on the package index --------------------------------------------------


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=540, cwd=cwd)


def test_the_requirements_resolve_on_the_package_index(model_workspace: Path, tmp_path: Path) -> None:
    """What the image's `pip install` runs, as a dry run for this interpreter (the recorded one), with a
    wheel of this Shipyard (not published under this version) passed as --wheel."""
    reachable = _pip("download", "--no-deps", "--dest", str(tmp_path / "probe"), "six")
    if reachable.returncode != 0:
        unavailable(f"the package index is unreachable: {(reachable.stderr.strip().splitlines() or ['?'])[-1]}")
    source = tmp_path / "source"  # a copy, so that building leaves the checkout as it is
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    built = _pip("wheel", "--no-deps", "--wheel-dir", str(tmp_path / "wheels"), str(source))
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "wheels").glob("shipyard_mlops-*.whl")
    out = tmp_path / "deploy"
    done = run_export("credit/1", out, wheels=(str(wheel),))
    assert not any("installed from a folder" in w for w in done.warnings)
    dockerfile = (out / "Dockerfile").read_text()
    assert "COPY wheels/ /tmp/wheels/" in dockerfile and "--find-links /tmp/wheels" in dockerfile
    assert (out / "wheels" / wheel.name).is_file()
    report = tmp_path / "report.json"
    resolved = _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                    "--find-links", str(out / "wheels"), "-r", str(out / "requirements.txt"))
    if resolved.returncode != 0 and not REQUIRED and "Could not fetch URL" in resolved.stderr:
        unavailable(f"the package index stopped answering: {resolved.stderr.strip().splitlines()[-1]}")
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    packages = shipyard.models.get("credit/1").environment["packages"]
    assert {name: chosen[name.lower()] for name in packages} == packages
    assert chosen["shipyard-mlops"] == __version__ and {"starlette", "uvicorn"} <= set(chosen)
