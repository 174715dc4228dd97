"""Data versioning: Shipyard vs DVC, both with a local cache only (no remote).

Every workload runs each tool's command-line interface as a user would, in a fresh temporary folder
per tool (Shipyard: ``shipyard init``; DVC: ``git init`` + ``dvc init``), and times each command as
subprocess wall time (interpreter start-up included). The data is generated on the fly, its mtimes are
set one minute in the past and it is written back to disk (``os.sync``) before any clock starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, Context, WorkerError, fmt_ratio, fmt_seconds, run_worker
from data import _gen

NAME = "data"
TITLE = "Data versioning: Shipyard vs DVC (local cache)"

HERE = Path(__file__).resolve().parent
TABLE_WORKER = HERE / "table_worker.py"

# repeats: runs of each status / no-op add (median reported); add_rounds: fresh-folder runs of (a) and (b)
# per tool, in ABBA order (best reported).
FULL = {"big_mb": 1024, "files": 20_000, "per_dir": 500, "min_bytes": 1024, "max_bytes": 4096,
        "rows": 1_000_000, "repeats": 3, "add_rounds": 2}
QUICK = {"big_mb": 100, "files": 2_000, "per_dir": 500, "min_bytes": 1024, "max_bytes": 4096,
         "rows": 100_000, "repeats": 3, "add_rounds": 2}
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5
#: Below this much free space in the temp folder, the big file shrinks to SMALL_BIG_MB.
MIN_FREE_BYTES = 6 * 10**9
SMALL_BIG_MB = 256
COMMAND_TIMEOUT = 900

_SCRUB_PREFIXES = ("SHIPYARD_", "DVC_", "GIT_")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CommandError(WorkerError):
    pass


def _run(argv: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run one command; return (wall seconds, stdout). A non-zero exit raises with the output's tail."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=COMMAND_TIMEOUT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-25:])
        raise CommandError(f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return seconds, proc.stdout


# --------------------------------------------------------------------------- the two tools


class Tool:
    """One tool's CLI in one fresh folder (`root`): the repository / workspace lives in `root/work`."""

    name = label = ""

    def __init__(self, exe: Path, base: Path) -> None:
        self.exe = exe
        self.base = base
        self.root = base / "work"
        self.root.mkdir()

    def env(self) -> dict[str, str]:
        return _base_env()

    def run(self, *args: str) -> tuple[float, str]:
        return _run([str(self.exe), *args], cwd=self.root, env=self.env())

    def timed(self, *args: str) -> float:
        return self.run(*args)[0]

    def files_read(self, stdout: str) -> int | None:
        """How many files a status command says it read (None when it does not say)."""
        return None

    def version(self) -> str:
        return self.run("--version")[1].strip().split()[-1]


class Shipyard(Tool):
    name, label = "shipyard", "Shipyard"

    def env(self) -> dict[str, str]:
        env = _base_env()
        env["SHIPYARD_USER"] = "bench"
        return env

    def init(self) -> None:
        self.run("init", str(self.root))

    def add_file_cmd(self, name: str, rel: str) -> list[str]:
        return ["data", "add", name, rel, "--kind", "files"]

    def add_folder_cmd(self, name: str, rel: str) -> list[str]:
        return ["data", "add", name, rel]

    def add_table_cmd(self, name: str, rel: str) -> list[str]:
        return ["data", "add", name, rel]

    def status_cmd(self, name: str, rel: str) -> list[str]:
        return ["data", "status", name, rel]

    def recorded(self, name: str, rel: str) -> dict[str, Any]:
        """What version 1 recorded (file count, bytes, rows), and how many versions there are."""
        shown = json.loads(self.run("data", "show", f"{name}@1", "--json")[1])
        versions = json.loads(self.run("data", "log", name, "--json")[1])
        return {"files": shown["file_count"], "bytes": shown["total_bytes"], "rows": shown.get("row_count"),
                "versions": len(versions)}

    def files_read(self, stdout: str) -> int | None:
        m = re.search(r"(\d+) file\(s\) read", stdout)
        return int(m.group(1)) if m else None

    def status_check(self, name: str, rel: str) -> dict[str, Any]:
        report = json.loads(self.run("data", "status", name, rel, "--json")[1])
        return {"clean": report["clean"], "modified": report["modified"], "added": report["added"],
                "removed": report["removed"], "files_read": report["files_read"]}


class DVC(Tool):
    name, label = "dvc", "DVC"

    def env(self) -> dict[str, str]:
        env = _base_env()
        env.update(
            DVC_NO_ANALYTICS="1",
            # keep DVC's per-repo state (hash cache, index) and config lookups inside the temp folder
            DVC_SITE_CACHE_DIR=str(self.base / "dvc-site-cache"),
            DVC_GLOBAL_CONFIG_DIR=str(self.base / "dvc-global-config"),
            DVC_SYSTEM_CONFIG_DIR=str(self.base / "dvc-system-config"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
        )
        return env

    def init(self) -> None:
        _run(["git", "init", "-q"], cwd=self.root, env=self.env())
        self.run("init", "-q")
        self.run("config", "core.analytics", "false")
        self.run("config", "core.check_update", "false")

    def add_file_cmd(self, name: str, rel: str) -> list[str]:
        return ["add", rel]

    add_folder_cmd = add_table_cmd = add_file_cmd

    def status_cmd(self, name: str, rel: str) -> list[str]:
        return ["status", f"{rel}.dvc"]

    def recorded(self, name: str, rel: str) -> dict[str, Any]:
        text = (self.root / f"{rel}.dvc").read_text()

        def field(key: str) -> int | None:
            m = re.search(rf"^\s*{key}:\s*(\d+)\s*$", text, re.M)
            return int(m.group(1)) if m else None

        files = field("nfiles")
        return {"files": files if files is not None else 1, "bytes": field("size"), "rows": None}

    def status_check(self, name: str, rel: str) -> dict[str, Any]:
        report = json.loads(self.run("status", f"{rel}.dvc", "--json")[1] or "{}")
        changes = [c for entry in report.values() for c in entry if isinstance(c, dict)]
        modified = sorted({path for c in changes for path, what in c.get("changed outs", {}).items()
                           if what == "modified"})
        return {"clean": not report, "modified": modified, "raw": report}


def _tools(ctx: Context) -> list[tuple[type[Tool], Path]]:
    shipyard = ctx.project_python.parent / "shipyard"
    if not shipyard.exists():
        shipyard = REPO_ROOT / ".venv" / "bin" / "shipyard"
    return [(Shipyard, shipyard), (DVC, ctx.peers_python.parent / "dvc")]


def _guard(ctx: Context, label: str, fn) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = fn()
    except (WorkerError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        ctx.log(f"  {label}: FAILED\n{exc}")
        return {"failed": True, "error": str(exc)[-2000:]}
    ctx.log(f"  {label}: done in {time.perf_counter() - t0:.1f} s")
    return result


def _median_of(n: int, fn) -> tuple[float, list[float]]:
    times = [fn() for _ in range(n)]
    return statistics.median(times), times


# --------------------------------------------------------------------------- workloads


def w_startup(ctx: Context, cls: type[Tool], exe: Path, repeats: int) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        with ctx.workdir(f"{cls.name}-startup") as wd:
            tool = cls(exe, wd)
            version = tool.version()
            seconds, times = _median_of(repeats, lambda: tool.timed("--version"))
        return {"seconds": seconds, "timings": times, "version": version}

    return _guard(ctx, f"{cls.label} --version", go)


def w_big_file(ctx: Context, cls: type[Tool], exe: Path, nbytes: int) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        with ctx.workdir(f"{cls.name}-big") as wd:
            tool = cls(exe, wd)
            tool.init()
            _gen.write_random_file(tool.root / "big.bin", nbytes)
            _gen.backdate(tool.root / "big.bin")
            _gen.settle()
            seconds = tool.timed(*tool.add_file_cmd("big", "big.bin"))
            rec = tool.recorded("big", "big.bin")
        return {"seconds": seconds, "bytes": nbytes, "mb_per_s": nbytes / 1e6 / seconds, "recorded": rec,
                "verified": rec["files"] == 1 and rec["bytes"] == nbytes}

    return _guard(ctx, f"{cls.label} add {nbytes / 2**20:,.0f} MiB file", go)


def w_folder(ctx: Context, cls: type[Tool], exe: Path, cfg: dict[str, Any], add_only: bool = False) -> dict[str, Any]:
    """(b) add the folder, (c) status unchanged, no-op add, (d) status after rewriting one file.
    With add_only, just (b) (a further round of it in a fresh folder)."""

    def go() -> dict[str, Any]:
        n, repeats = cfg["files"], cfg["repeats"]
        with ctx.workdir(f"{cls.name}-folder") as wd:
            tool = cls(exe, wd)
            tool.init()
            sizes = _gen.write_tree(tool.root / "folder", n, cfg["per_dir"], cfg["min_bytes"], cfg["max_bytes"])
            _gen.backdate(tool.root / "folder")
            _gen.settle()
            total = sum(sizes.values())

            add_s = tool.timed(*tool.add_folder_cmd("folder", "folder"))
            rec = tool.recorded("folder", "folder")
            out: dict[str, Any] = {
                "files": n, "bytes": total,
                "add": {"seconds": add_s, "files_per_s": n / add_s, "recorded": rec,
                        "verified": rec["files"] == n and rec["bytes"] == total},
            }
            if add_only:
                return out

            s, times = _median_of(repeats, lambda: tool.timed(*tool.status_cmd("folder", "folder")))
            check = tool.status_check("folder", "folder")
            out["status_clean"] = {"seconds": s, "timings": times, "check": check, "verified": check["clean"]}

            s, times = _median_of(repeats, lambda: tool.timed(*tool.add_folder_cmd("folder", "folder")))
            rec2 = tool.recorded("folder", "folder")
            out["noop_add"] = {"seconds": s, "timings": times, "recorded": rec2,
                               "verified": rec2["files"] == n and rec2.get("versions", 1) == rec.get("versions", 1)}

            changed = _gen.tree_layout(n, cfg["per_dir"])[n // 2]
            _gen.rewrite_file(tool.root / "folder" / changed)  # fresh mtime, as a user's edit would have
            runs = [tool.run(*tool.status_cmd("folder", "folder")) for _ in range(repeats)]
            times = [t for t, _ in runs]
            s = statistics.median(times)
            check = tool.status_check("folder", "folder")
            check["files_read_timed_runs"] = [tool.files_read(stdout) for _, stdout in runs]
            expected = [changed] if cls is Shipyard else ["folder"]
            ok = not check["clean"] and check["modified"] == expected and not check.get("added") \
                and not check.get("removed")
            out["status_changed"] = {"seconds": s, "timings": times, "changed_file": changed, "check": check,
                                     "verified": ok}
        return out

    what = "add" if add_only else "add, status, no-op add, status"
    return _guard(ctx, f"{cls.label} folder of {cfg['files']:,} files ({what})", go)


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several runs of one add, with every run's time; a failed run fails the workload."""
    failed = [r for r in runs if r.get("failed")]
    if failed:
        return failed[0]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["timings"] = [r["seconds"] for r in runs]
    best["verified"] = all(r["verified"] for r in runs)
    return best


def w_table(ctx: Context, tools: list[tuple[type[Tool], Path]], cfg: dict[str, Any]) -> dict[str, Any]:
    """(e) profile_table in-process (Shipyard only), then `data add` of the same table as Parquet."""
    out: dict[str, Any] = {}
    with ctx.workdir("table") as wd:
        parquet = wd / "t.parquet"

        def profile() -> dict[str, Any]:
            return run_worker(ctx.project_python, TABLE_WORKER,
                              ["--rows", str(cfg["rows"]), "--repeats", str(cfg["repeats"]), "--out", str(parquet)],
                              env=_base_env(), cwd=wd, timeout=COMMAND_TIMEOUT)

        out["profile"] = _guard(ctx, f"Shipyard profile_table, {cfg['rows']:,} rows", profile)
        if out["profile"].get("failed") or not parquet.exists():
            return out
        out["profile"]["verified"] = out["profile"]["profiled_rows"] == cfg["rows"]
        size = parquet.stat().st_size
        for cls, exe in tools:
            def add(cls: type[Tool] = cls, exe: Path = exe) -> dict[str, Any]:
                base = wd / cls.name
                base.mkdir()
                try:
                    tool = cls(exe, base)
                    tool.init()
                    shutil.copyfile(parquet, tool.root / "t.parquet")
                    _gen.backdate(tool.root / "t.parquet")
                    _gen.settle()
                    seconds = tool.timed(*tool.add_table_cmd("t", "t.parquet"))
                    rec = tool.recorded("t", "t.parquet")
                finally:
                    shutil.rmtree(base, ignore_errors=True)
                ok = rec["files"] == 1 and (rec["rows"] == cfg["rows"] if cls is Shipyard else rec["bytes"] == size)
                return {"seconds": seconds, "parquet_bytes": size, "recorded": rec, "verified": ok}

            out[f"add_{cls.name}"] = _guard(ctx, f"{cls.label} add table ({size / 2**20:.0f} MiB Parquet)", add)
    return out


# --------------------------------------------------------------------------- suite entry points


def _free_bytes(ctx: Context) -> int:
    return shutil.disk_usage(ctx.tmp_base or tempfile.gettempdir()).free


def run(ctx: Context) -> dict[str, Any]:
    cfg = dict(QUICK if ctx.quick else FULL)
    notes: list[str] = []
    free = _free_bytes(ctx)
    ctx.log(f"free space in the temp folder: {free / 1e9:.1f} GB")
    if free < MIN_FREE_BYTES and cfg["big_mb"] > SMALL_BIG_MB:
        cfg["big_mb"] = SMALL_BIG_MB
        notes.append(f"Only {free / 1e9:.1f} GB free in the temp folder: the big file is {SMALL_BIG_MB} MiB, "
                     f"not {FULL['big_mb']} MiB.")
        ctx.log("  " + notes[-1])
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start "
                     f"on {os.cpu_count()} CPUs, so expect more noise than usual.")
        ctx.log("  " + notes[-1])
    tools = _tools(ctx)
    w: dict[str, Any] = {}

    ctx.log("(0) CLI start-up: --version")
    w["startup"] = {cls.name: w_startup(ctx, cls, exe, cfg["repeats"]) for cls, exe in tools}

    rounds = max(1, cfg["add_rounds"])

    def abba(i: int) -> list[tuple[type[Tool], Path]]:
        return tools if i % 2 == 0 else tools[::-1]

    nbytes = cfg["big_mb"] << 20
    ctx.log(f"(a) add one {cfg['big_mb']:,} MiB file of random bytes ({rounds} rounds)")
    big: dict[str, list[dict[str, Any]]] = {cls.name: [] for cls, _ in tools}
    for i in range(rounds):
        for cls, exe in abba(i):
            big[cls.name].append(w_big_file(ctx, cls, exe, nbytes))
    w["add_big"] = {name: _best(runs) for name, runs in big.items()}

    ctx.log(f"(b-d) folder of {cfg['files']:,} files of {cfg['min_bytes']}-{cfg['max_bytes']} bytes, "
            f"{cfg['per_dir']} per folder")
    folder: dict[str, Any] = {cls.name: w_folder(ctx, cls, exe, cfg) for cls, exe in tools}
    extra: dict[str, list[dict[str, Any]]] = {cls.name: [] for cls, _ in tools}
    for i in range(1, rounds):
        for cls, exe in abba(i):
            extra[cls.name].append(w_folder(ctx, cls, exe, cfg, add_only=True))
    for name, runs in extra.items():
        if not folder[name].get("failed"):
            folder[name]["add"] = _best([folder[name]["add"]] + [_part(r, "add") for r in runs])
    w["folder"] = folder

    ctx.log(f"(e) table of {cfg['rows']:,} rows x 20 columns")
    w["table"] = w_table(ctx, tools, cfg)

    versions = {name: r.get("version") for name, r in w["startup"].items() if not r.get("failed")}
    return {
        "suite": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "config": cfg,
        "versions": versions,
        "notes": notes,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "workloads": w,
        "summary": summary_rows(w, cfg),
    }


def _ratio(dvc_s: float | None, shipyard_s: float | None) -> float | None:
    if not dvc_s or not shipyard_s:
        return None
    return dvc_s / shipyard_s


def _part(r: dict[str, Any], key: str | None) -> dict[str, Any]:
    if r.get("failed"):
        return r
    return r[key] if key else r


def summary_rows(w: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(label: str, s: dict[str, Any], d: dict[str, Any] | None, check: str, note: str = "",
            s_cmd: str = "", d_cmd: str = "") -> None:
        s_time = None if s.get("failed") else s.get("seconds")
        d_time = None if d is None or d.get("failed") else d.get("seconds")
        rows.append({"workload": label, "shipyard_s": s_time, "dvc_s": d_time, "ratio": _ratio(d_time, s_time),
                     "check": check, "note": note, "shipyard_cmd": s_cmd, "dvc_cmd": d_cmd})

    def failed(*rs: dict[str, Any] | None) -> bool:
        return any(r is None or r.get("failed") for r in rs)

    s, d = w["startup"]["shipyard"], w["startup"]["dvc"]
    add(f"(0) CLI start-up, --version (median of {cfg['repeats']})", s, d, "-" if failed(s, d) else "ok",
        s_cmd="shipyard --version", d_cmd="dvc --version")

    s, d = w["add_big"]["shipyard"], w["add_big"]["dvc"]
    if failed(s, d):
        check = "FAILED"
    else:
        same = s["recorded"]["files"] == d["recorded"]["files"] == 1
        check = f"ok: 1 file, {s['bytes']:,} B each" if same and s["verified"] and d["verified"] else "MISMATCH"
    best = f" (best of {cfg['add_rounds']})" if cfg.get("add_rounds", 1) > 1 else ""
    add(f"(a) add one {cfg['big_mb']:,} MiB file{best}", s, d, check,
        s_cmd="shipyard data add big big.bin --kind files", d_cmd="dvc add big.bin")

    fs, fd = w["folder"]["shipyard"], w["folder"]["dvc"]
    n = cfg["files"]
    s, d = _part(fs, "add"), _part(fd, "add")
    if failed(s, d):
        check = "FAILED"
    else:
        a, b = s["recorded"]["files"], d["recorded"]["files"]
        check = (f"ok: {a:,} = {b:,} files" if a == b == n and s["verified"] and d["verified"]
                 else f"MISMATCH: Shipyard {a:,}, DVC nfiles {b:,}, generated {n:,}")
    add(f"(b) add a folder of {n:,} files{best}", s, d, check,
        s_cmd="shipyard data add folder folder", d_cmd="dvc add folder")

    s, d = _part(fs, "status_clean"), _part(fd, "status_clean")
    check = "FAILED" if failed(s, d) else ("ok: both clean" if s["verified"] and d["verified"] else "MISMATCH")
    add(f"(c) status, nothing changed (median of {cfg['repeats']})", s, d, check,
        s_cmd="shipyard data status folder folder", d_cmd="dvc status folder.dvc")

    s, d = _part(fs, "status_changed"), _part(fd, "status_changed")
    check = ("FAILED" if failed(s, d) else
             "ok: both report the change" if s["verified"] and d["verified"] else "MISMATCH")
    add(f"(d) status, 1 file rewritten (median of {cfg['repeats']})", s, d, check,
        "the rewritten file keeps its fresh mtime (as after a user's edit).",
        s_cmd="shipyard data status folder folder", d_cmd="dvc status folder.dvc")

    s, d = _part(fs, "noop_add"), _part(fd, "noop_add")
    check = ("FAILED" if failed(s, d) else
             "ok: no new version" if s["verified"] and d["verified"] else "MISMATCH")
    add(f"no-op add of the unchanged folder (median of {cfg['repeats']})", s, d, check,
        "run between (c) and (d), before any file is changed.",
        s_cmd="shipyard data add folder folder", d_cmd="dvc add folder")

    t = w["table"]
    p = t.get("profile", {"failed": True})
    prof = None if p.get("failed") else {"seconds": p["profile_seconds"]}
    add(f"(e1) profile_table, {cfg['rows']:,} rows x 20 cols, in-process (median of {cfg['repeats']})",
        prof or {"failed": True}, None, "FAILED" if prof is None else ("ok" if p.get("verified") else "MISMATCH"),
        "Shipyard only (DVC does not profile data).", s_cmd="shipyard.data.profile.profile_table(table)")
    s, d = t.get("add_shipyard", {"failed": True}), t.get("add_dvc", {"failed": True})
    if failed(s, d):
        check = "FAILED"
    else:
        check = f"ok: {s['recorded']['rows']:,} rows" if s["verified"] and d["verified"] else "MISMATCH"
    add("(e2) add the same table as Parquet", s, d, check,
        "not like-for-like: Shipyard reads the table, stores a canonical Parquet copy, schema and profile; "
        "DVC hashes and copies the file.",
        s_cmd="shipyard data add t t.parquet", d_cmd="dvc add t.parquet")
    return rows


def render(result: dict[str, Any], console: Any) -> None:
    versions = result.get("versions", {})
    title = f"{result['title']} - Shipyard {versions.get('shipyard', '?')}, DVC {versions.get('dvc', '?')}"
    if result.get("quick"):
        title += " [quick]"
    headers = ["Workload", "Shipyard", "DVC", "DVC/Shipyard", "Check"]
    rows, notes = [], []
    for r in result["summary"]:
        if r["note"]:
            notes.append(f"{r['workload'].split(' ')[0]} {r['note']}")
        rows.append([r["workload"], fmt_seconds(r["shipyard_s"]), fmt_seconds(r["dvc_s"]), fmt_ratio(r["ratio"]),
                     r["check"]])
    console.table(title, headers, rows, right_align={1, 2, 3})
    console.note("Wall time of each CLI command (a fresh process, start-up included); DVC/Shipyard > 1 means "
                 "Shipyard is faster.")
    console.table("Commands timed", ["Workload", "Shipyard", "DVC"],
                  [[r["workload"].split(" ")[0], r["shipyard_cmd"], r["dvc_cmd"] or "-"]
                   for r in result["summary"] if r["shipyard_cmd"]])
    for note in notes + result.get("notes", []):
        console.note(note)
    w = result["workloads"]
    folder = w["folder"]
    for key in ("shipyard", "dvc"):
        r = folder.get(key, {})
        if r.get("failed"):
            console.note(f"{key} folder workloads failed: {r['error'].splitlines()[0]}")
    s = folder.get("shipyard", {})
    if not s.get("failed"):
        reads = s["status_changed"]["check"].get("files_read_timed_runs")
        console.note(f"Files Shipyard re-read: (c) {s['status_clean']['check']['files_read']} of {s['files']:,}; "
                     f"(d) {', '.join(str(r) for r in reads or [])} in the timed runs (the rewritten file is "
                     "re-hashed while its mtime is under 2 s old).")
    for group in ("add_big",):
        for key, r in w[group].items():
            if r.get("failed"):
                console.note(f"{key} {group} failed: {r['error'].splitlines()[0]}")
    for key, r in w["table"].items():
        if isinstance(r, dict) and r.get("failed"):
            console.note(f"table {key} failed: {r['error'].splitlines()[0]}")
