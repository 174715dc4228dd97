"""`shipyard deploy export`: a folder from which one model version is built into a container image that runs
`shipyard serve`, and deployed to Kubernetes. The image either carries the model in a workspace of its own
(bundled) or reads the workspace's shared stores (shared); the folder appears whole or not at all."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipyard.context import Context
from shipyard.errors import ConfigError, ValidationError
from shipyard.models.records import ModelVersion
from shipyard.serving.manifests import (
    MIB,
    PORT,
    USER_ID,
    Resources,
    Workload,
    check_cpu,
    check_label_value,
    check_name,
    check_namespace,
    check_secret,
    manifests,
    memory_mib,
    name_for,
)

Registry = Literal["bundled", "shared"]
REGISTRIES = ("bundled", "shared")
DISTRIBUTION = "shipyard-mlops"
WORKSPACE_IN_IMAGE = "/srv/shipyard"
RECORD = "shipyard-export.json"
#: Per serving worker, when no infrastructure gate measured the version's peak memory.
DEFAULT_MEMORY_REQUEST_MIB = 512
DEFAULT_MEMORY_LIMIT_MIB = 1024
#: The gate's probe loads the model in a clean interpreter and predicts a batch; a server holds the same
#: model and a few requests' frames. The request leaves a quarter on top of the probe's peak, the limit
#: room for a large batch.
REQUEST_FACTOR = 1.25
LIMIT_FACTOR = 2.0
_IMAGE = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                    r"(?:@sha256:[a-f0-9]{64})?$")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-[^-]+)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class ExportOptions:
    registry: Registry = "bundled"
    name: str | None = None
    namespace: str | None = None
    image: str | None = None
    workers: int = 1
    cpu: str = "500m"
    memory: str | None = None  # the request, overriding the measurement; the limit keeps the ratio
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_percent: int = 70
    secret: str | None = None
    base_image: str | None = None
    wheels: tuple[str, ...] = ()
    force: bool = False


@dataclass
class Export:
    """What was written where, and why the resources are what they are."""

    out: str
    version_id: str
    ref: str
    registry: Registry
    name: str
    namespace: str | None
    image: str
    base_image: str
    requirements: list[str]
    memory_request_mib: int
    memory_limit_mib: int
    memory_source: str
    files: list[str]
    secret: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(ctx: Context, ref: str, out: str | os.PathLike[str], options: ExportOptions | None = None) -> Export:
    """Write the build context and manifests serving `ref` into the folder `out` (see docs/deploy.md).

    Everything is checked first and written into a temporary folder beside `out`, renamed into place at
    the end: a failure leaves `out` as it was."""
    from shipyard.models.registry import get_model_version

    options = options or ExportOptions()
    _check_options(options)
    target = Path(out).expanduser().absolute()
    _check_target(ctx, target, options.force)
    version = get_model_version(ctx, ref)
    warnings: list[str] = []
    if version.status == "archived":
        warnings.append(f"{version.version_id} is archived: no alias may point at it, yet the image will serve it.")
    name = check_name(options.name) if options.name else name_for(version.model)
    check_label_value(version.model, "model name")
    image = _check_image(options.image or f"{name}:{version.version}", "--image")
    base_image = _check_image(options.base_image, "--base-image") if options.base_image else \
        _python_image(version, warnings)
    extras = ["serve", *_shared_extras(ctx)] if options.registry == "shared" else ["serve"]
    wheels = [_check_wheel(Path(w)) for w in options.wheels]
    requirements = _requirements(version, extras)
    _check_shipyard_source(wheels, warnings)
    resources, source = _resources(ctx, version, options, warnings)
    secret = (options.secret or f"{name}-registry") if options.registry == "shared" else None
    if secret is not None:
        check_secret(secret)
    work = Workload(name=name, namespace=options.namespace, image=image, model=version.model,
                    version=version.version, ref=ref, artifact_digest=version.artifact_digest, resources=resources,
                    min_replicas=options.min_replicas, max_replicas=options.max_replicas,
                    target_cpu_percent=options.target_cpu_percent, secret=secret)
    result = Export(out=str(target), version_id=version.version_id, ref=ref, registry=options.registry, name=name,
                    namespace=options.namespace, image=image, base_image=base_image, requirements=requirements,
                    memory_request_mib=resources.memory_request_mib, memory_limit_mib=resources.memory_limit_mib,
                    memory_source=source, files=[], secret=secret, warnings=warnings)

    def write(folder: Path) -> None:
        _write_workspace(ctx, version, folder / "workspace", options.registry)
        if wheels:
            (folder / "wheels").mkdir()
            for wheel in wheels:
                shutil.copyfile(wheel, folder / "wheels" / wheel.name)
        (folder / "requirements.txt").write_text(_requirements_text(version, requirements))
        (folder / "Dockerfile").write_text(dockerfile(version, base_image, options.workers, bool(wheels)))
        (folder / ".dockerignore").write_text(f"kubernetes/\n{RECORD}\n")
        _write_manifests(work, folder / "kubernetes")
        result.files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                              if p.is_file() and ".shipyard" not in p.parts) + [RECORD]
        record = {key: value for key, value in result.to_dict().items() if key != "out"}
        (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")

    _write_whole(target, write)
    return result


# -- checks ----------------------------------------------------------------------------------------------


def _check_target(ctx: Context, target: Path, force: bool) -> None:
    for path in (target, *target.parents):
        if path.exists() and not path.is_dir():
            raise ValidationError(f"--out {target}: {path} is a file; give a folder (it is created if missing).",
                                  out=str(target))
    if not target.exists() or not any(target.iterdir()):
        return
    if not force:
        raise ValidationError(f"--out {target} already exists and is not empty; nothing was written. Give a new "
                              "folder, or --force to replace it with the export.", out=str(target))
    protected = {ctx.workspace.root.resolve(), Path.cwd().resolve()}
    if any(p == target.resolve() or target.resolve() in p.parents for p in protected):
        raise ValidationError(f"--out {target} holds the workspace or the current folder; --force will not "
                              "replace it. Export into a folder of its own.", out=str(target))


def _check_options(options: ExportOptions) -> None:
    if options.registry not in REGISTRIES:
        raise ValidationError(f"Invalid --registry {options.registry!r}: use 'bundled' (the model inside the image) "
                              "or 'shared' (the image reads the workspace's shared stores).")
    if options.namespace is not None:
        check_namespace(options.namespace)
    check_cpu(options.cpu)
    if options.memory is not None:
        memory_mib(options.memory)
    if options.workers < 1:
        raise ValidationError(f"--workers must be at least 1, got {options.workers}.")
    if options.min_replicas < 1 or options.max_replicas < options.min_replicas:
        raise ValidationError(f"Replicas must satisfy 1 <= --min-replicas <= --max-replicas, got "
                              f"{options.min_replicas} and {options.max_replicas}.")
    if not 1 <= options.target_cpu_percent <= 100:
        raise ValidationError(f"--target-cpu must be a percentage from 1 to 100, got {options.target_cpu_percent}.")
    if options.secret is not None and options.registry != "shared":
        raise ValidationError("--secret names the Secret holding the shared stores' URLs; it goes with "
                              "--registry shared.")


def _check_image(image: str, option: str) -> str:
    if not _IMAGE.match(image):
        raise ValidationError(f"Invalid image reference {image!r} ({option}): expected [REGISTRY/]NAME[:TAG], e.g. "
                              "registry.example.com/ml/credit:3 (lowercase path).", value=image)
    return image


def _check_wheel(path: Path) -> Path:
    if not path.is_file() or not _WHEEL.match(path.name):
        raise ValidationError(f"--wheel {path} is not a wheel file (NAME-VERSION-…-…-….whl); build one with "
                              "`pip wheel --no-deps -w wheels PATH`.", value=str(path))
    return path


def _wheel_of(path: Path) -> tuple[str, str]:
    """(distribution, version) from a wheel's file name, the distribution normalised as on an index."""
    match = _WHEEL.match(path.name)
    assert match is not None  # checked by _check_wheel
    return re.sub(r"[-_.]+", "-", match.group("name")).lower(), match.group("version")


def _shared_extras(ctx: Context) -> list[str]:
    """The extras the image needs to reach this workspace's stores; refused when they are on this machine."""
    store, artifacts = ctx.workspace.store_url, ctx.workspace.artifacts_url
    if store.startswith("sqlite") or "://" not in artifacts:
        raise ConfigError(
            f"--registry shared needs stores a container can reach, but this workspace keeps its metadata at "
            f"{store.split('?')[0]} and its artifacts at {artifacts}. Use --registry bundled (the model goes into "
            "the image), or set store.url to PostgreSQL and artifacts.url to S3 (docs/stores.md).")
    extras = []
    if store.startswith("postgresql"):
        extras.append("postgres")
    if artifacts.startswith("s3://"):
        extras.append("s3")
    return extras


# -- the image -------------------------------------------------------------------------------------------


def _python_image(version: ModelVersion, warnings: list[str]) -> str:
    import platform

    recorded = str(version.environment.get("python") or "")
    match = re.match(r"^(\d+)\.(\d+)", recorded)
    if match:
        return f"python:{match.group(1)}.{match.group(2)}-slim"
    running = ".".join(platform.python_version_tuple()[:2])
    warnings.append(f"{version.version_id} records no Python version; the image uses this one's, {running}.")
    return f"python:{running}-slim"


def _requirements(version: ModelVersion, extras: list[str]) -> list[str]:
    from shipyard._version import __version__

    packages = version.environment.get("packages") or {}
    pinned = [f"{package}=={packages[package]}" for package in sorted(packages, key=str.lower)]
    return [*pinned, f"{DISTRIBUTION}[{','.join(extras)}]=={__version__}"]


def _requirements_text(version: ModelVersion, requirements: list[str]) -> str:
    python = version.environment.get("python", "?")
    return (f"# The packages recorded with {version.version_id} when it was registered (Python {python}), pinned\n"
            "# exactly, and the Shipyard that serves it.\n" + "\n".join(requirements) + "\n")


def _check_shipyard_source(wheels: list[Path], warnings: list[str]) -> None:
    """A Shipyard installed from a folder may be a version that no package index has: say so."""
    from importlib.metadata import PackageNotFoundError, distribution

    from shipyard._version import __version__

    ours = [(wheel, found) for wheel in wheels if (found := _wheel_of(wheel))[0] == DISTRIBUTION]
    if ours:
        wheel, (_, wheel_version) = ours[0]
        if wheel_version != __version__:
            raise ValidationError(f"--wheel {wheel.name} is Shipyard {wheel_version}, but this is Shipyard "
                                  f"{__version__}, which requirements.txt pins. Build the wheel from this Shipyard.")
        return
    try:
        direct = distribution(DISTRIBUTION).read_text("direct_url.json")
    except PackageNotFoundError:
        direct = None
    if direct and "dir_info" in json.loads(direct):
        warnings.append(f"This Shipyard ({__version__}) is installed from a folder, so a package index may not have "
                        "it and the image build may not find it. Pass a wheel built from that folder: "
                        "`pip wheel --no-deps -w wheels FOLDER` then --wheel wheels/shipyard_mlops-….whl.")


def dockerfile(version: ModelVersion, base_image: str, workers: int, wheels: bool) -> str:
    serve = ["shipyard", "serve", version.version_id, "--host", "0.0.0.0", "--port", str(PORT)]
    if workers > 1:
        serve += ["--workers", str(workers)]
    find_links = " --find-links /tmp/wheels" if wheels else ""
    copy_wheels = "COPY wheels/ /tmp/wheels/\n" if wheels else ""
    ready = (f"import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:{PORT}"
             "/v2/health/ready', timeout=4).status != 200)")
    return f"""\
# Serves {version.version_id} with `shipyard serve`; written by `shipyard deploy export`.
FROM {base_image}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    SHIPYARD_WORKSPACE={WORKSPACE_IN_IMAGE}

RUN groupadd --system --gid {USER_ID} shipyard \\
 && useradd --system --uid {USER_ID} --gid {USER_ID} --home-dir {WORKSPACE_IN_IMAGE} --no-create-home shipyard

COPY requirements.txt /tmp/requirements.txt
{copy_wheels}RUN pip install --no-cache-dir{find_links} -r /tmp/requirements.txt && rm -rf /tmp/requirements.txt /tmp/wheels

COPY --chown={USER_ID}:{USER_ID} workspace/ {WORKSPACE_IN_IMAGE}/
WORKDIR {WORKSPACE_IN_IMAGE}
USER {USER_ID}:{USER_ID}

EXPOSE {PORT}
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["python", "-c", "{ready}"]
CMD {json.dumps(serve)}
"""


# -- resources -------------------------------------------------------------------------------------------


def _resources(ctx: Context, version: ModelVersion, options: ExportOptions,
               warnings: list[str]) -> tuple[Resources, str]:
    """Memory from the infrastructure gate's measured peak (per worker), else from --memory, else defaults."""
    workers = options.workers
    if options.memory is not None:
        request = memory_mib(options.memory)
        return (Resources(options.cpu, request, _round_up(request * LIMIT_FACTOR / REQUEST_FACTOR)),
                f"--memory {options.memory}")
    peak = measured_peak_mib(ctx, version)
    if peak is None:
        warnings.append(
            f"{version.version_id} has no infrastructure gate result with a measured peak memory, so the pods "
            f"request the default {DEFAULT_MEMORY_REQUEST_MIB}Mi per worker (limit {DEFAULT_MEMORY_LIMIT_MIB}Mi). "
            f"Run `shipyard models gate {version.version_id}` with an infrastructure gate declared, or pass --memory.")
        return (Resources(options.cpu, DEFAULT_MEMORY_REQUEST_MIB * workers, DEFAULT_MEMORY_LIMIT_MIB * workers),
                "default")
    return (Resources(options.cpu, _round_up(peak * REQUEST_FACTOR * workers), _round_up(peak * LIMIT_FACTOR * workers)),
            f"infrastructure gate: peak {peak:g} MiB per worker")


def measured_peak_mib(ctx: Context, version: ModelVersion) -> float | None:
    """The peak memory the newest infrastructure gate result of `version` measured, in MiB."""
    from shipyard.gates.gating import latest_gates

    stored = latest_gates(ctx, version.version_id).get("infrastructure")
    if stored is None:
        return None
    peak = (stored.result.get("metrics") or {}).get("peak_memory_mb")
    return float(peak) if isinstance(peak, (int, float)) and peak > 0 else None


def _round_up(mib: float, step: int = 16) -> int:
    return int(-(-mib // step) * step)


# -- writing ---------------------------------------------------------------------------------------------


def _write_workspace(ctx: Context, version: ModelVersion, folder: Path, registry: Registry) -> None:
    """The image's workspace: for `bundled` one holding only this version (record and artifact); for
    `shared` settings alone, the stores coming from the environment."""
    from shipyard.config import init_workspace, load_workspace
    from shipyard.context import Context as Ctx
    from shipyard.context import Stores
    from shipyard.models.transfer import copy_version
    from shipyard.policy import SPEC_FILE, Policy
    from shipyard.store.db import MetadataStore

    if registry == "shared":
        folder.mkdir()
        (folder / SPEC_FILE).write_text(
            "# The stores come from the environment: SHIPYARD_STORE_URL and SHIPYARD_ARTIFACTS_URL (a Secret).\n")
        return
    root = init_workspace(folder)
    workspace = load_workspace(root, {"store.url": "sqlite:///.shipyard/shipyard.db",
                                      "artifacts.url": ".shipyard/artifacts"})
    store = MetadataStore(workspace.store_url, busy_timeout_ms=workspace.settings.store.busy_timeout_ms)
    try:
        copy_version(ctx, version, Ctx(Stores(store, workspace), ctx.actor, workspace, Policy(root)))
    finally:
        store.dispose()
    shutil.rmtree(root / ".shipyard" / "artifacts" / "tmp", ignore_errors=True)  # emptied by the atomic write
    (root / ".shipyard" / "shipyard.db.migrate.lock").unlink(missing_ok=True)  # the lock of its first opening


def _write_manifests(work: Workload, folder: Path) -> None:
    import yaml

    folder.mkdir()
    for file_name, obj in manifests(work).items():
        (folder / file_name).write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def _write_whole(target: Path, write: Any) -> None:
    """Write into a temporary folder beside `target`, then rename it into place (replacing what is there)."""
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    aside: Path | None = None
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it private; the folder is the user's, like any other
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, aside / target.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not target.exists():
            os.replace(aside / target.name, target)
        for folder in missing:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
