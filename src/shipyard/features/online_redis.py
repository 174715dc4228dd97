"""The online store on Redis: a string per (view, version, entity key) under the store's namespace, written in
one MULTI/EXEC transaction per load (guarded by WATCH on the view's info), and each read answered by one MGET.

Keys: shipyard:NS:v:VIEW:VERSION holds the view version's info (JSON), shipyard:NS:r:VIEW:VERSION:KEY a row,
shipyard:NS:views the set of VIEW:VERSION names. A row's value is its order (event and created time, each as
20 digits, so that text order is time order inside Redis) followed by its values as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from shipyard.errors import BackendError, ValidationError
from shipyard.features.online import _NAME, EncodedRow, InfoCheck, OnlineStore, ViewInfo

_ORDER = 40  # characters of a row value holding (event, created)
_OFFSET = 2**63  # int64 nanoseconds shifted to be non-negative
_BATCH = 5000  # rows per script call inside the transaction

# Replace each row only by one at least as recent; the order prefixes compare as text.
_UPSERT = """
local n = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i]
  local old = redis.call('GET', key)
  if (not old) or string.sub(old, 1, 40) <= string.sub(new, 1, 40) then
    redis.call('SET', key, new)
    n = n + 1
  end
end
return n
"""


def _order(event_ns: int, created_ns: int) -> str:
    return f"{event_ns + _OFFSET:020d}{created_ns + _OFFSET:020d}"


class RedisOnlineStore(OnlineStore):
    """Online values in Redis under shipyard:NAMESPACE: (one namespace per workspace, or per test)."""

    def __init__(self, url: str, *, namespace: str = "default", client: Any = None) -> None:
        if not _NAME.fullmatch(namespace):
            raise ValidationError(f"Invalid online store namespace {namespace!r}: use 1-200 letters, digits, '_', "
                                  "'.' or '-'.")
        if client is None:
            try:
                import redis
            except ModuleNotFoundError as exc:
                raise BackendError(f"Using online.url={url} needs the redis package, which is not installed. Install "
                                   "it with `pip install 'shipyard-mlops[redis]'`.") from exc
            client = redis.Redis.from_url(url)
        self.url = url
        self.namespace = namespace
        self.client = client
        self.prefix = f"shipyard:{namespace}:"

    def _info_key(self, view: str, version: str) -> str:
        return f"{self.prefix}v:{view}:{version}"

    def _row_key(self, view: str, version: str, key: str) -> str:
        return f"{self.prefix}r:{view}:{version}:{key}"

    def _commit(self, view: str, version: str, check: InfoCheck, rows: Iterable[EncodedRow]) -> int:
        from redis.exceptions import WatchError

        info_key = self._info_key(view, version)
        batch: list[EncodedRow] | None = None
        with self._errors(), self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(info_key)
                    found = pipe.get(info_key)
                    info = check(None if found is None else ViewInfo.from_json(view, version, json.loads(found)))
                    if batch is None:
                        batch = list(rows)
                    pipe.multi()
                    calls = 0
                    for start in range(0, len(batch), _BATCH):
                        part = batch[start:start + _BATCH]
                        pipe.eval(_UPSERT, len(part), *[self._row_key(view, version, r.key) for r in part],
                                  *[_order(r.event_ns, r.created_ns) + r.payload for r in part])
                        calls += 1
                    pipe.set(info_key, json.dumps(info.to_json()))
                    pipe.sadd(f"{self.prefix}views", f"{view}:{version}")
                    results = pipe.execute()
                    return sum(int(n) for n in results[:calls])
                except WatchError:  # another writer changed the info between our read and EXEC: redo the check
                    continue

    def _fetch(self, views: Sequence[tuple[str, str]], keys: Sequence[tuple[str, str, str]]
               ) -> tuple[dict[tuple[str, str], ViewInfo], dict[tuple[str, str, str], tuple[int, int, str]]]:
        names = [self._info_key(v, n) for v, n in views] + [self._row_key(v, n, k) for v, n, k in keys]
        with self._errors():
            got = self.client.mget(names) if names else []
        infos = {(v, n): ViewInfo.from_json(v, n, json.loads(raw))
                 for (v, n), raw in zip(views, got, strict=False) if raw is not None}
        found: dict[tuple[str, str, str], tuple[int, int, str]] = {}
        for wanted, raw in zip(keys, got[len(views):], strict=True):
            if raw is not None:
                text = raw.decode()
                found[wanted] = (int(text[:20]) - _OFFSET, int(text[20:_ORDER]) - _OFFSET, text[_ORDER:])
        return infos, found

    def views(self) -> list[ViewInfo]:
        with self._errors():
            names = sorted(n.decode() for n in self.client.smembers(f"{self.prefix}views"))
            pairs = [tuple(n.rsplit(":", 1)) for n in names]
            got = self.client.mget([self._info_key(v, n) for v, n in pairs]) if pairs else []
        return [ViewInfo.from_json(v, n, json.loads(raw)) for (v, n), raw in zip(pairs, got, strict=True)
                if raw is not None]

    def _drop(self, view: str, version: str | None) -> int:
        versions = [version] if version is not None else [i.version for i in self.views() if i.view == view]
        deleted = 0
        with self._errors():
            for name in versions:
                # Rows first, the info last: an interrupted drop leaves the view listed, and running it again
                # finishes it.
                deleted += self._unlink_matching(f"{self.prefix}r:{view}:{name}:*")
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.delete(self._info_key(view, name))
                    pipe.srem(f"{self.prefix}views", f"{view}:{name}")
                    pipe.execute()
        return deleted

    def clear(self) -> None:
        """Delete every key of this namespace."""
        with self._errors():
            self._unlink_matching(f"{self.prefix}*")

    def _unlink_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(self.client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(self.client.unlink(*batch))
        return deleted

    def close(self) -> None:
        self.client.close()

    def _errors(self) -> AbstractContextManager[None]:
        return _translate_errors(self.url)


@contextmanager
def _translate_errors(url: str) -> Iterator[None]:
    """Connection failures as a BackendError naming the URL and the setting."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BackendError(f"The online store at {url} cannot be reached: {exc}. Check that Redis runs there, or "
                           "point online.url elsewhere.") from exc
