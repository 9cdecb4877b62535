"""The watch protocol, client side, shared by the sync and asyncio clients.

Every Rostra watch RPC streams the same protocol (``rostra.v1.WatchKind``): SNAPSHOT
parts of the state, one SYNCED, then one CHANGES per raft entry; a RESET at any time
means "drop what you hold, a snapshot follows". :class:`Follower` keeps the watched
items by key and turns that into :class:`Change` values: the whole state once synced,
then what each entry changed. After a RESET (or a broken stream caught mid-snapshot)
the next SYNCED yields the difference between what was held and the fresh state, so a
subscriber sees every change exactly once even across a resync. A reopened stream
resumes from :meth:`Follower.resume_index`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, Mapping, Optional, Sequence, TypeVar

from .v1 import common_pb2

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Change(Generic[K, V]):
    """One consistent point of a watch."""

    #: The raft index this view reflects (resume from it with ``start_index``).
    index: int
    #: Items new or changed since the previous change (all of them, the first time).
    upserted: Mapping[K, V]
    #: Keys gone since the previous change.
    removed: Sequence[K]
    #: The whole watched state as of ``index``.
    state: Mapping[K, V]
    #: True when this change was computed after the server asked for a resync (RESET).
    resynced: bool = False


@dataclass(frozen=True)
class Frame(Generic[K, V]):
    """One response of any watch RPC, as the protocol sees it."""

    kind: int
    index: int
    reason: str
    upserted: Sequence[tuple[K, V]] = ()
    removed: Sequence[K] = ()


@dataclass
class Follower(Generic[K, V]):
    """Keeps one watch's items; see the module doc."""

    state: dict[K, V] = field(default_factory=dict)
    synced: bool = False
    index: int = 0
    # While (re)building after a RESET: the state held before it, and the new snapshot.
    before: Optional[dict[K, V]] = None
    building: dict[K, V] = field(default_factory=dict)
    first: bool = True

    @classmethod
    def starting_at(cls, start_index: int) -> Follower[K, V]:
        """A follower for a watch opened at ``start_index`` (0: the full state first;
        otherwise the caller holds the state as of that index)."""
        f: Follower[K, V] = cls()
        if start_index:
            f.synced, f.index, f.first = True, start_index, False
        return f

    def resume_index(self) -> int:
        """Where a reopened stream starts: the index held, or 0 for the full state."""
        return self.index if self.synced else 0

    def reopened(self) -> None:
        """The stream broke; a stream from :meth:`resume_index` follows."""
        if not self.synced:
            self._reset()

    def _reset(self) -> None:
        if self.before is None and not self.first:
            self.before = dict(self.state)
        self.state = {}
        self.building = {}
        self.synced = False

    def feed(self, frame: Frame[K, V]) -> Optional[Change[K, V]]:
        """Applies one frame; returns a change at each consistent point."""
        kind = frame.kind
        if kind == common_pb2.WATCH_KIND_RESET:
            self._reset()
            return None
        if kind == common_pb2.WATCH_KIND_SNAPSHOT:
            self.building.update(frame.upserted)
            return None
        if kind == common_pb2.WATCH_KIND_SYNCED:
            self.index = frame.index
            if self.synced:
                return None  # a resumed stream caught up; its changes were yielded
            self.synced = True
            new, self.building = self.building, {}
            old, self.before = self.before, None
            first, self.first = self.first, False
            self.state = new
            if first:
                return Change(self.index, dict(new), [], dict(new))
            old = old or {}
            upserted = {k: v for k, v in new.items() if k not in old or old[k] != v}
            removed = [k for k in old if k not in new]
            return Change(self.index, upserted, removed, dict(new), resynced=True)
        if kind == common_pb2.WATCH_KIND_CHANGES:
            self.index = frame.index
            target = self.state if self.synced else self.building
            for k in frame.removed:
                target.pop(k, None)
            target.update(frame.upserted)
            if not self.synced:
                return None
            return Change(self.index, dict(frame.upserted), list(frame.removed), dict(self.state))
        raise ValueError(f"unknown watch message kind {kind}")


@dataclass(frozen=True)
class Spec(Generic[K, V]):
    """A watch RPC: its stub method, how to build a request from a start index, and
    how to split a response into a :class:`Frame`."""

    method: str
    request: Callable[[int], Any]
    frame: Callable[[Any], Frame[K, V]]


def kv_frame(r: Any) -> Frame[str, Any]:
    from .v1 import kv_pb2

    up = [(e.kv.key, e.kv) for e in r.events if e.type == kv_pb2.KvEvent.TYPE_PUT]
    gone = [e.kv.key for e in r.events if e.type == kv_pb2.KvEvent.TYPE_DELETE]
    return Frame(r.kind, r.index, r.reason, up, gone)


def event_frame(r: Any) -> Frame[int, Any]:
    return Frame(r.kind, r.index, r.reason, [(e.ltime, e) for e in r.upserted], list(r.removed))


def services_frame(r: Any) -> Frame[str, Any]:
    return Frame(r.kind, r.index, r.reason, [(s.name, s) for s in r.upserted], list(r.removed))


def instances_frame(r: Any) -> Frame[tuple[str, str], Any]:
    return Frame(
        r.kind,
        r.index,
        r.reason,
        [((e.node.name, e.service.id), e) for e in r.upserted],
        [(i.node, i.service_id) for i in r.removed],
    )
