"""A model (pyfunc flavor) that doubles `x` and, for the row x == HOLD, waits in predict until a release file
exists: a test can hold a request inside the server at a known point, across processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

HOLD = -7


class HeldModel:
    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["x"] == HOLD).any():
            Path(self.folder, f"entered-{os.getpid()}").touch()
            for _ in range(6000):  # at most a minute, then answer anyway
                if Path(self.folder, "release").exists():
                    break
                time.sleep(0.01)
        return frame["x"].to_numpy(dtype=float) * 2


def register(folder: Path) -> None:
    import shipyard

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with shipyard.start_run("held") as run:
        run.log_model(HeldModel(folder), "held", input_example=frame, signature_frame=frame)


def wait_for(path_glob: str, folder: Path) -> list[Path]:
    for _ in range(3000):  # a bounded count of polls
        found = list(folder.glob(path_glob))
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"nothing matched {path_glob} in {folder}")
