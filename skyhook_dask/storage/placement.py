"""Where a RADOS pool's objects live: object name -> placement group -> OSDs.

Ceph places an object by hashing its name (Bob Jenkins' hash, as ``ceph_str_hash_rjenkins``)
onto one of the pool's placement groups (a *stable* modulo of ``pg_num``), and each group onto
OSDs with CRUSH. The hash is computed here and each group's OSDs are asked of the monitor once
(``pg map``), so placing 100,000 objects costs ``pg_num`` monitor calls, not one per object.
A test checks the answers against the monitor's own ``osd map`` of every object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..exceptions import StoreError

_MASK = 0xFFFFFFFF


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - b - c) & _MASK ^ (c >> 13)
    b = (b - c - a) & _MASK ^ (a << 8) & _MASK
    c = (c - a - b) & _MASK ^ (b >> 13)
    a = (a - b - c) & _MASK ^ (c >> 12)
    b = (b - c - a) & _MASK ^ (a << 16) & _MASK
    c = (c - a - b) & _MASK ^ (b >> 5)
    a = (a - b - c) & _MASK ^ (c >> 3)
    b = (b - c - a) & _MASK ^ (a << 10) & _MASK
    c = (c - a - b) & _MASK ^ (b >> 15)
    return a, b, c


def str_hash_rjenkins(key: bytes) -> int:
    """Ceph's object-name hash (``CEPH_STR_HASH_RJENKINS``, every pool's default)."""
    a = b = 0x9E3779B9
    c = 0
    length, pos = len(key), 0
    while length - pos >= 12:
        a = (a + int.from_bytes(key[pos : pos + 4], "little")) & _MASK
        b = (b + int.from_bytes(key[pos + 4 : pos + 8], "little")) & _MASK
        c = (c + int.from_bytes(key[pos + 8 : pos + 12], "little")) & _MASK
        a, b, c = _mix(a, b, c)
        pos += 12
    tail = key[pos:]
    c = (c + length) & _MASK
    # the last 11 bytes: a takes bytes 0-3, b bytes 4-7, c bytes 8-10 shifted past its low byte
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + (int.from_bytes(tail[8:11], "little") << 8)) & _MASK
    return _mix(a, b, c)[2]


def stable_mod(value: int, count: int) -> int:
    """Ceph's ``ceph_stable_mod``: groups keep their objects while ``count`` grows to the next
    power of two."""
    mask = (1 << (count - 1).bit_length()) - 1
    return value & mask if (value & mask) < count else value & (mask >> 1)


@dataclass(frozen=True)
class ObjectPlacement:
    """One object's placement group and OSDs (``acting[0]`` serves it: the primary)."""

    name: str
    pg: str
    up: tuple[int, ...]
    acting: tuple[int, ...]

    @property
    def primary(self) -> int | None:
        return self.acting[0] if self.acting else None


@dataclass(frozen=True)
class PoolMap:
    """The OSDs of every placement group of one pool, as the monitor saw them at ``epoch``."""

    pool: str
    pool_id: int
    pg_num: int
    epoch: int
    groups: dict[int, tuple[tuple[int, ...], tuple[int, ...]]]  # seed -> (up, acting)

    def place(self, name: str) -> ObjectPlacement:
        seed = stable_mod(str_hash_rjenkins(name.encode()), self.pg_num)
        up, acting = self.groups[seed]
        return ObjectPlacement(name, f"{self.pool_id}.{seed:x}", up, acting)

    def place_all(self, names: Iterable[str]) -> list[ObjectPlacement]:
        return [self.place(name) for name in names]


def pool_map(store: Any) -> PoolMap:
    """The placement of ``store``'s pool (a :class:`RadosStore`) from its monitor."""
    dump = store.mon_command({"prefix": "osd dump", "format": "json"})
    pools = {p["pool_name"]: p for p in dump["pools"]}
    if store.pool not in pools:
        raise StoreError(f"pool {store.pool!r} is not in the cluster's OSD map")
    pool = pools[store.pool]
    pool_id, pg_num = int(pool["pool"]), int(pool["pg_num"])
    groups = {}
    for seed in range(pg_num):
        mapped = store.mon_command({"prefix": "pg map", "pgid": f"{pool_id}.{seed:x}",
                                    "format": "json"})  # fmt: skip
        groups[seed] = (tuple(mapped["up"]), tuple(mapped["acting"]))
    return PoolMap(store.pool, pool_id, pg_num, int(dump["epoch"]), groups)


def object_map(store: Any, name: str) -> ObjectPlacement:
    """One object's placement as the monitor computes it (``osd map``), for checks."""
    mapped = store.mon_command({"prefix": "osd map", "pool": store.pool, "object": name,
                                "format": "json"})  # fmt: skip
    return ObjectPlacement(name, mapped["pgid"], tuple(mapped["up"]), tuple(mapped["acting"]))


def decode_reply(reply: bytes, what: str) -> dict[str, Any]:
    try:
        return json.loads(reply)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise StoreError(f"the monitor's answer to {what!r} is not JSON: {reply[:200]!r}") from exc
