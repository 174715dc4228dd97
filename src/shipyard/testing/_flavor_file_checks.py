"""The checks on saved files: what save writes, what load gives back, here and in a new Python process."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from shipyard.errors import IntegrityError, ValidationError
from shipyard.models.flavors.base import file_digest, qualified_name
from shipyard.testing._flavor_subject import COLUMN_MATCHING, Fail, Skip, Subject, json_dict, same, task_is

META_KEYS = ("flavor", "task", "columns", "feature_names", "pickle_based")
FRESH_TIMEOUT_S = 300
_UNKNOWN_OPTION = "no_such_option"
_GARBAGE = b"\x00\xff not a model: check_flavor wrote these bytes \xfe\n"


def save(s: Subject) -> str:
    path, returned = s.save("saved")
    written = sorted(p.name for p in path.parent.iterdir())
    if written != [s.flavor.file_name]:
        raise Fail(f"save() left {written} in its folder; it must write exactly one file, at the path it is given "
                   f"({s.flavor.file_name!r}).")
    if path.stat().st_size == 0:
        raise Fail("save() wrote an empty file.")
    meta = json_dict(returned, "the metadata save() returns")
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise Fail(f"the metadata lacks {', '.join(missing)}; it must record {', '.join(META_KEYS)}.")
    if meta["flavor"] != s.flavor.name:
        raise Fail(f"the metadata says flavor {meta['flavor']!r}; it must say {s.flavor.name!r}.")
    task_is(meta["task"], s.task, "the metadata's task")
    for key in ("task", "classes", "n_features"):
        if key in meta and meta[key] != s.details[key]:
            raise Fail(f"the metadata's {key} is {meta[key]!r}, but describe() says {s.details[key]!r}.")
    matching = meta["columns"]
    if matching not in COLUMN_MATCHING:
        raise Fail(f"the metadata's columns is {matching!r}; it must be one of {', '.join(COLUMN_MATCHING)}.")
    if s.columns is not None and matching != s.columns:
        raise Fail(f"the metadata says the model takes its columns {matching}, but it takes them {s.columns}.")
    names = meta["feature_names"]
    if matching == "by_name" and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise Fail(f"a model that takes its columns by_name must list them in feature_names, got {names!r}.")
    if matching != "by_name" and names is not None:
        raise Fail(f"feature_names must be None unless the columns are matched by_name (they are {matching}).")
    if not isinstance(meta["pickle_based"], bool):
        raise Fail(f"the metadata's pickle_based must be True or False, got {meta['pickle_based']!r}.")
    if not s.save_options and meta["pickle_based"] is not s.flavor.pickle_based:
        raise Fail(f"with default options the metadata says pickle_based={meta['pickle_based']}, but the flavor "
                   f"declares pickle_based = {s.flavor.pickle_based}.")
    if "sha256" in meta and meta["sha256"] != file_digest(path):
        raise Fail(f"the metadata records sha256 {meta['sha256']!r}, not the saved file's digest; record "
                   "file_digest(path) after the file is written.")
    same(s.predict(s.frame), s.expected, "saving changed the model's predictions", exact=True)
    s.path, s.meta = path, meta
    return f"{path.stat().st_size} bytes; columns {matching}; pickle_based {meta['pickle_based']}"


def save_refuses_wrong_input(s: Subject) -> str:
    attempts = [("an unknown option", "unknown", {_UNKNOWN_OPTION: True}, None),
                ("a builtins.object", "foreign", {}, object())]
    for what, folder, extra, model in attempts:
        try:
            s.save(folder, model, **extra)
        except ValidationError as exc:
            if extra and _UNKNOWN_OPTION not in str(exc):
                raise Fail(f"save() refused {what} without naming it: {exc}") from None
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is the wrong kind
            raise Fail(f"save() given {what} raised {type(exc).__name__}: {exc}; raise a "
                       "shipyard.errors.ValidationError that names the problem.") from exc
        raise Fail(f"save() accepted {what}; it must raise a shipyard.errors.ValidationError "
                   "(check_options(self.name, options) and self._check_handles(model) do that).")
    return "an unknown option and an object() were refused"


def deterministic_bytes(s: Subject) -> str:
    if not s.flavor.deterministic:
        raise Skip("the flavor does not promise it (deterministic = False)")
    assert s.path is not None
    again, _ = s.save("again")
    first, second = file_digest(s.path), file_digest(again)
    if first != second:
        raise Fail(f"saving the same model twice wrote different files (SHA-256 {first[:12]}… then {second[:12]}…). "
                   "Remove what varies (timestamps, object ids, random names) or declare deterministic = False.")
    return f"two saves wrote the same {s.path.stat().st_size} bytes"


def round_trip(s: Subject) -> str:
    assert s.path is not None
    loaded = s.flavor.load(s.path, s.meta)
    same(s.predict(s.frame, loaded), s.expected, "predictions after loading differ from the original's", exact=True)
    proba = s.predict_proba(s.frame, loaded)
    if (proba is None) != (s.proba is None):
        raise Fail(f"predict_proba() gives {'None' if proba is None else 'probabilities'} after loading, but "
                   f"{'None' if s.proba is None else 'probabilities'} before.")
    if proba is not None:
        same(proba, s.proba, "probabilities after loading differ from the original's", exact=False)
    details = json_dict(s.flavor.describe(loaded), "describe() of the loaded model")
    for key in ("task", "classes"):
        if details.get(key) != s.details[key]:
            raise Fail(f"describe() of the loaded model says {key} {details.get(key)!r}, the original "
                       f"{s.details[key]!r}. Keep what describe() needs in the file or the metadata.")
    return f"loaded as a {qualified_name(loaded)}; the same predictions and description"


def load_verifies_digest(s: Subject) -> str:
    if not s.meta["pickle_based"]:
        raise Skip("the file is not pickle-based: loading it runs no code")
    assert s.path is not None
    if "sha256" not in s.meta:
        raise Fail("the metadata of a pickle-based file records no sha256; record file_digest(path) after the file "
                   "is written, and check it in load() with verify_digest(path, meta).")
    tampered = s.folder / "tampered" / s.flavor.file_name
    tampered.parent.mkdir()
    data = bytearray(s.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    without_digest = {k: v for k, v in s.meta.items() if k != "sha256"}
    for what, path, meta in (("a changed file", tampered, s.meta), ("metadata without sha256", s.path, without_digest)):
        try:
            s.flavor.load(path, meta)
        except IntegrityError:
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception means the bytes were read unchecked
            raise Fail(f"loading {what} raised {type(exc).__name__}: {exc}, not an IntegrityError: the digest was "
                       "not checked before unpickling. Call verify_digest(path, meta) first in load().") from exc
        raise Fail(f"load() unpickled {what}. Call verify_digest(path, meta) first in load().")
    return "a changed file and metadata without sha256 were refused with IntegrityError"


def load_refuses_garbage(s: Subject) -> str:
    garbage = s.folder / "garbage" / s.flavor.file_name
    garbage.parent.mkdir()
    garbage.write_bytes(_GARBAGE)
    try:
        loaded = s.flavor.load(garbage, s.meta)
    except Exception as exc:  # noqa: BLE001 - refusing in any way is right
        return f"load() raised {type(exc).__name__}"
    try:
        s.flavor.predict(loaded, s.frame)
    except Exception as exc:  # noqa: BLE001
        return f"predict() on what load() gave raised {type(exc).__name__}"
    raise Fail("load() turned a file of garbage into a model that predicts; it must raise when the file is not a "
               "model it saved.")


def fresh_interpreter(s: Subject) -> str:
    if not s.fresh_interpreter:
        raise Skip("turned off with fresh_interpreter=False")
    cls = type(s.flavor)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        where = "__main__" if cls.__module__ == "__main__" else "a function"
        raise Skip(f"{cls.__qualname__} is defined in {where}, which a new process cannot import; define the "
                   "flavor in a module, as a plug-in's is")
    folder = s.folder / "fresh"
    folder.mkdir()
    request = {"flavor": s.flavor, "path": str(s.path), "meta": s.meta, "frame": s.frame}
    (folder / "request.pkl").write_bytes(pickle.dumps(request))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))}
    done = subprocess.run([sys.executable, "-m", "shipyard.testing._fresh_flavor", str(folder)],
                          capture_output=True, text=True, env=env, timeout=FRESH_TIMEOUT_S)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise Fail(f"loading the saved file and predicting in a new process failed:\n{tail}")
    result = pickle.loads((folder / "result.pkl").read_bytes())  # noqa: S301 - written by that process for us
    same(result["predict"], s.expected, "a new process predicts differently", exact=True)
    if (result["proba"] is None) != (s.proba is None):
        raise Fail("predict_proba() in a new process and in this one disagree on whether there are probabilities.")
    if s.proba is not None:
        same(result["proba"], s.proba, "a new process gives other probabilities", exact=False)
    return "the same predictions from a new process"
