"""Checks on keys and values logged to runs, with messages that name the value and the fix."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from shipyard.errors import ValidationError
from shipyard.store import KEY_LENGTH

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = KEY_LENGTH
_KEY = re.compile(r"^[\w\-./ :]+$")


_valid_keys: set[str] = set()


def known_keys() -> set[str]:
    """Keys that already passed check_key (read-only for callers)."""
    return _valid_keys


def check_key(key: Any, kind: str) -> str:
    if key in _valid_keys and type(key) is str:  # hot path: metric keys repeat
        return key
    if not isinstance(key, str):
        raise ValidationError(f"{kind.capitalize()} key {key!r} must be a string, got {type(key).__name__}.")
    if not key or not key.strip():
        raise ValidationError(f"{kind.capitalize()} key must not be empty.")
    if len(key) > KEY_LENGTH:
        raise ValidationError(
            f"{kind.capitalize()} key '{key[:40]}…' is {len(key)} characters long; "
            f"the limit is {KEY_LENGTH}. Use a shorter key."
        )
    if not _KEY.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise ValidationError(
            f"{kind.capitalize()} key {key!r} has characters that are not allowed. Use letters, digits "
            "and _ - . / : or spaces."
        )
    if len(_valid_keys) < 10_000:
        _valid_keys.add(key)
    return key


def check_metric_value(key: str, value: Any) -> float:
    if type(value) is float and math.isfinite(value):  # hot path
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"Metric '{key}' must be a real number, got {value!r} ({type(value).__name__}). "
            "Log text as a tag or a param instead."
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(
            f"Metric '{key}' has the non-finite value {number!r}; only finite numbers can be logged. "
            "Check the computation for a division by zero or an overflow."
        )
    return number


def check_step(key: str, step: Any) -> int:
    if type(step) is int and -(2**63) <= step < 2**63:  # hot path
        return step
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValidationError(f"Step of metric '{key}' must be an integer, got {step!r}.")
    step = int(step)
    if not -(2**63) <= step < 2**63:
        raise ValidationError(f"Step {step} of metric '{key}' does not fit in 64 bits.")
    return step


def check_timestamp(key: str, timestamp: Any) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral) or timestamp < 0:
        raise ValidationError(
            f"Timestamp of metric '{key}' must be a non-negative integer of milliseconds since the "
            f"epoch, got {timestamp!r}."
        )
    return int(timestamp)


def _text_value(kind: str, key: str, value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise ValidationError(
            f"{kind} '{key}' has a value of {len(text)} characters; the limit is {limit}. "
            "Log long values as an artifact instead."
        )
    return text


def param_value(key: str, value: Any) -> str:
    return _text_value("Param", key, value, MAX_PARAM_VALUE)


def tag_value(key: str, value: Any) -> str:
    return _text_value("Tag", key, value, MAX_TAG_VALUE)


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{what.capitalize()} must be a non-empty string, got {name!r}.")
    if len(name) > MAX_NAME:
        raise ValidationError(f"{what.capitalize()} is {len(name)} characters long; the limit is {MAX_NAME}.")
    return name


def check_params(params: Any) -> dict[str, str]:
    if not isinstance(params, dict):
        raise ValidationError(f"Params must be a dict of key → value, got {type(params).__name__}.")
    return {check_key(k, "param"): param_value(k, v) for k, v in params.items()}


def check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise ValidationError(f"Tags must be a dict of key → value, got {type(tags).__name__}.")
    return {check_key(k, "tag"): tag_value(k, v) for k, v in tags.items()}
