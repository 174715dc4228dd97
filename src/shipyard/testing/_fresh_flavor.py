"""Run by check_flavor in a new interpreter: load the saved model through its flavor and predict with it.

Reads request.pkl from the folder named on the command line (the parent wrote it there for this run)
and writes result.pkl next to it; any failure ends the process with a traceback on stderr."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path


def main(folder: Path) -> None:
    request = pickle.loads((folder / "request.pkl").read_bytes())  # noqa: S301 - written by the parent process
    flavor, frame = request["flavor"], request["frame"]
    model = flavor.load(Path(request["path"]), request["meta"])
    result = {"predict": flavor.predict(model, frame), "proba": flavor.predict_proba(model, frame)}
    (folder / "result.pkl").write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
