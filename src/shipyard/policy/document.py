"""Reading shipyard.yaml: parsed once per change of the file, with YAML errors that show the line and a
caret, the digest of what it declares, and the line of any key path (for messages about values)."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

_cache: dict[str, tuple[tuple[int, ...], Document]] = {}
_lock = threading.Lock()


@dataclass
class Document:
    """The parsed file: its mappings, its text (for pointing at lines) and validated sections."""

    path: Path
    data: dict[str, Any]
    text: str
    sections: dict[Any, Any] = field(default_factory=dict)  # validated section objects, by key

    @property
    def name(self) -> str:
        return self.path.name

    def digest(self, *keys: str) -> str:
        """SHA-256 of what the file declares (or of the value at a key path): formatting and comments
        do not count, so only a change of meaning changes it."""
        value: Any = self.data
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return policy_digest(value)

    def locate(self, path: tuple[Any, ...]) -> tuple[int, int] | None:
        """The (line, column), from 0, of the key or item at `path`, or of its nearest parent that exists."""
        import yaml

        try:
            node: Any = yaml.compose(self.text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            return None
        mark = None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
                if match is None:
                    break
                mark, node = match[0].start_mark, match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                mark = node.start_mark
            else:
                break
        return (mark.line, mark.column) if mark is not None else None

    def point(self, path: tuple[Any, ...]) -> tuple[str, str]:
        """(" line N", the line with a caret under the key) for a message about `path`; ("", "") if unknown."""
        found = self.locate(path)
        if found is None:
            return "", ""
        line, column = found
        lines = self.text.splitlines()
        shown = lines[line] if line < len(lines) else ""
        return f" line {line + 1}", f"\n  {shown}\n  {' ' * column}^"


def policy_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def read_document(path: Path) -> Document:
    """The parsed file (an empty document when it does not exist), re-read only when it changed."""
    try:
        stat = path.stat()
        key: tuple[int, ...] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except FileNotFoundError:
        key = ()
    with _lock:
        cached = _cache.get(str(path))
        if cached is not None and cached[0] == key:
            return cached[1]
    text = path.read_text() if key else ""
    document = Document(path, _parse(path, text), text)
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[str(path)] = (key, document)
    return document


def _parse(path: Path, text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise ConfigError(f"{path} is not valid YAML: {problem}. Fix the file and retry.") from exc
        lines = text.splitlines()
        context = getattr(exc, "context_mark", None)
        if (mark.line >= len(lines) or not lines[mark.line].strip()) and context is not None:
            mark = context  # the error is at the end of the file: point at where the construct began
        line = lines[mark.line] if mark.line < len(lines) else ""
        raise ConfigError(
            f"{path} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}.\n"
            f"  {line}\n  {' ' * mark.column}^\nFix the file and retry.",
            line=mark.line + 1, column=mark.column + 1,
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, got {type(data).__name__}.")
    return data
