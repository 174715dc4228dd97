"""A controller that stops at a chosen point: `python -m tests.control.killing POINT WHEN [OPTIONS] -- ARGS` runs
`shipyard ARGS` (e.g. `watch --once`) in this process, and right before or right after POINT it sends itself
SIGKILL, or (with --hold DIR) says so in DIR/reached and waits for DIR/go before it goes on.

POINT is a cycle state, reached where its transition is committed (`triggered`: `start_cycle`, the others:
`advance`), or a step inside one: `pipeline` (the standard pipeline of `_register`), `register` (the pipeline's
registration of the challenger), `start_canary`, `review` (the rollout review an approval policy requests).
WHEN is `before` (the point has not happened) or `after` (it is committed). --no-renew stops the controller from
renewing its lease (a controller stalled past its lease)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STEPS = {"pipeline": ("shipyard.pipelines.lifecycle", "run_standard"),
         "register": ("shipyard.models.registry", "register_artifact"),
         "start_canary": ("shipyard.serving.canary", "start_canary"),
         "review": ("shipyard.models.reviews", "request_review")}
HOLD_SECONDS = 300.0  # a held controller whose test went away exits rather than wait for ever


def stop(hold: Path | None) -> None:
    """What happens at the point: SIGKILL, or a wait for the test's go-ahead."""
    if hold is None:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    (hold / "reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_SECONDS
    while not (hold / "go").exists():
        if time.monotonic() > deadline:
            os._exit(75)
        time.sleep(0.05)


def wrap(function: Callable[..., Any], when: str, hold: Path | None,
         matches: Callable[[tuple[Any, ...], dict[str, Any]], bool] = lambda args, kwargs: True) -> Callable[..., Any]:
    """`function` with the stop before or after its first call that `matches`."""
    done = False

    @functools.wraps(function)
    def stopping(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        first = not done and matches(args, kwargs)
        if first:
            done = True
        if first and when == "before":
            stop(hold)
        result = function(*args, **kwargs)
        if first and when == "after":
            stop(hold)
        return result

    return stopping


def arm(point: str, when: str, hold: Path | None) -> None:
    """Patch where the controller looks the point's function up when it calls it."""
    import importlib

    from shipyard.control import controller
    from shipyard.control.cycles import STATES

    if point == "triggered":
        controller.start_cycle = wrap(controller.start_cycle, when, hold)
    elif point in STATES:
        controller.advance = wrap(controller.advance, when, hold,
                                  lambda args, kwargs: (args[2] if len(args) > 2 else kwargs.get("state")) == point)
    elif point in STEPS:
        module = importlib.import_module(STEPS[point][0])
        setattr(module, STEPS[point][1], wrap(getattr(module, STEPS[point][1]), when, hold))
    else:
        raise SystemExit(f"unknown point {point!r}: a cycle state ({', '.join(STATES)}) or {', '.join(STEPS)}")


def main(argv: list[str]) -> int:
    if "--" not in argv:
        raise SystemExit(__doc__)
    ours, args = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    point, when, *options = ours
    if when not in ("before", "after"):
        raise SystemExit(f"WHEN is before or after, not {when!r}")
    hold: Path | None = None
    while options:
        option = options.pop(0)
        if option == "--hold":
            hold = Path(options.pop(0))
        elif option == "--no-renew":
            from shipyard.store import leases

            @contextlib.contextmanager
            def unkept(*_: Any) -> Iterator[None]:
                yield

            leases.kept = unkept  # type: ignore[assignment]
        else:
            raise SystemExit(f"unknown option {option!r}")
    arm(point, when, hold)
    from shipyard.cli.main import main as shipyard

    return shipyard(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
