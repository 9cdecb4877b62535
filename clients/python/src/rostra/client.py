"""The synchronous client: a thin layer over the generated stubs (``rostra.v1``).

Unary calls map one to one; what raw stubs make hard is done here once: a watch that
resumes from its last index when the stream breaks (:class:`Watch`), and a lock held
for the life of a stream, with its fencing token (:class:`Lock`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Generic, Iterator, Optional, Sequence

import grpc

from . import _requests, _watch
from ._requests import Bytes
from ._errors import RETRIABLE, LockLost, RostraError, from_rpc
from ._watch import Change, Follower, K, Spec, V
from .v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    kv_pb2,
    kv_pb2_grpc,
    lock_pb2,
    lock_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

#: How long a watch waits before reopening after a failure, at most.
MAX_BACKOFF = 1.0


class Watch(Generic[K, V], Iterator[Change[K, V]]):
    """Iterates a watch's changes; reopens the stream from the last index after a
    failure the server can recover from, so none is missed or repeated. ``close()``
    (or leaving a ``with`` block) ends it."""

    def __init__(self, stub: Any, spec: Spec[K, V], start_index: int = 0) -> None:
        self._stub, self._spec = stub, spec
        self._follower: Follower[K, V] = Follower.starting_at(start_index)
        self._call: Any = None
        self._closed = False
        self._backoff = 0.05

    def __iter__(self) -> Watch[K, V]:
        return self

    def __next__(self) -> Change[K, V]:
        while True:
            if self._closed:
                raise StopIteration
            if self._call is None:
                method = getattr(self._stub, self._spec.method)
                self._call = method(self._spec.request(self._follower.resume_index()))
            try:
                response = next(self._call)
            except StopIteration:
                self._broken()  # the server closed the stream (it is stopping)
                continue
            except grpc.RpcError as e:
                if self._closed:
                    raise StopIteration from None
                if e.code() not in RETRIABLE:
                    raise from_rpc(e) from None
                self._broken()
                continue
            self._backoff = 0.05
            change = self._follower.feed(self._spec.frame(response))
            if change is not None:
                return change

    def _broken(self) -> None:
        self._call = None
        self._follower.reopened()
        time.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    @property
    def index(self) -> int:
        """The index of the last change returned."""
        return self._follower.index

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> Watch[K, V]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lock:
    """A lock (or one of ``limit`` semaphore slots) held while its stream is open.

    ``with client.lock("jobs/nightly") as token:`` waits until it is held and gives the
    fencing token: it only grows from one holder to the next, so a resource that
    rejects tokens older than the newest it has seen never takes a stale holder's
    write. ``lost`` is set if the lock is lost while held (``lost_reason`` says why).
    """

    def __init__(self, stub: Any, name: str, limit: int, session_name: str) -> None:
        self._stub = stub
        self._request = lock_pb2.LockHoldRequest(name=name, limit=limit, session_name=session_name)
        self._call: Any = None
        self._watcher: Optional[threading.Thread] = None
        self.token: Optional[int] = None
        self.session = ""
        self.key = ""
        self.lost = threading.Event()
        self.lost_reason = ""

    def acquire(self) -> int:
        """Blocks until the lock is held; returns the fencing token."""
        self._call = self._stub.Hold(self._request)
        try:
            for r in self._call:
                which = r.WhichOneof("event")
                if which == "acquired":
                    token = int(r.acquired.token)
                    self.token, self.session, self.key = token, r.acquired.session, r.acquired.key
                    self._watcher = threading.Thread(target=self._watch, daemon=True)
                    self._watcher.start()
                    return token
                if which == "lost":
                    raise LockLost(grpc.StatusCode.ABORTED, r.lost.reason)
        except grpc.RpcError as e:
            raise from_rpc(e) from None
        raise LockLost(grpc.StatusCode.UNAVAILABLE, "the server ended the lock stream")

    def _watch(self) -> None:
        try:
            for r in self._call:
                if r.WhichOneof("event") == "lost":
                    self.lost_reason = r.lost.reason
                    break
            else:
                self.lost_reason = "the server ended the lock stream"
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return  # released
            self.lost_reason = from_rpc(e).details
        self.lost.set()

    def release(self) -> None:
        """Releases the lock (ends its stream; the server releases it at once)."""
        if self._call is not None:
            self._call.cancel()
        if self._watcher is not None:
            self._watcher.join()
        self._call = self._watcher = None

    def __enter__(self) -> int:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _unary(f: Any, request: Any) -> Any:
    try:
        return f(request)
    except grpc.RpcError as e:
        raise from_rpc(e) from None


class KV:
    """Consul's key/value store."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = kv_pb2_grpc.KVStub(channel)

    def get(self, key: str, *, consistency: common_pb2.Consistency = common_pb2.CONSISTENCY_DEFAULT) -> Optional[kv_pb2.KvPair]:
        r = _unary(self._stub.Get, kv_pb2.GetRequest(key=key, consistency=consistency))
        return r.kv if r.HasField("kv") else None

    def list(self, prefix: str, *, consistency: common_pb2.Consistency = common_pb2.CONSISTENCY_DEFAULT) -> list[kv_pb2.KvPair]:
        r = _unary(self._stub.List, kv_pb2.ListRequest(prefix=prefix, consistency=consistency))
        return list(r.kvs)

    def put(
        self,
        key: str,
        value: Bytes = b"",
        *,
        flags: int = 0,
        cas: Optional[int] = None,
        acquire: Optional[str] = None,
        release: Optional[str] = None,
    ) -> bool:
        """Writes ``key``; with ``cas``, only if its modify index is ``cas`` (0: only
        if absent); with ``acquire``/``release`` (a session id), as Consul's KV lock.
        Returns whether it was written."""
        return bool(_unary(self._stub.Put, _requests.put(key, value, flags, cas, acquire, release)).succeeded)

    def delete(self, key: str, *, recurse: bool = False, cas: Optional[int] = None) -> bool:
        return bool(_unary(self._stub.Delete, _requests.delete(key, recurse, cas)).succeeded)

    def watch(self, key: str, *, prefix: bool = False, start_index: int = 0) -> Watch[str, kv_pb2.KvPair]:
        """The pairs at ``key`` (or under it, with ``prefix``), changes keyed by key."""
        spec = Spec("Watch", lambda i: kv_pb2.WatchRequest(key=key, prefix=prefix, start_index=i), _watch.kv_frame)
        return Watch(self._stub, spec, start_index)


class Events:
    """User events (Consul's ``/v1/event``)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = event_pb2_grpc.EventStub(channel)

    def fire(self, name: str, payload: Bytes = b"", *, node: str = "", service: str = "", tag: str = "") -> event_pb2.UserEvent:
        req = event_pb2.EventFireRequest(name=name, payload=_requests.to_bytes(payload), node_filter=node, service_filter=service, tag_filter=tag)
        event: event_pb2.UserEvent = _unary(self._stub.Fire, req).event
        return event

    def list(self, name: str = "") -> list[event_pb2.UserEvent]:
        return list(_unary(self._stub.List, event_pb2.EventListRequest(name=name)).events)

    def watch(self, name: str = "", *, start_index: int = 0) -> Watch[int, event_pb2.UserEvent]:
        """Retained events (all, or those named ``name``), keyed by Lamport time."""
        spec = Spec("Watch", lambda i: event_pb2.EventWatchRequest(name=name, start_index=i), _watch.event_frame)
        return Watch(self._stub, spec, start_index)


class Catalog:
    """Nodes, services and their instances."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = catalog_pb2_grpc.CatalogStub(channel)

    def register(self, node: str, address: str, service: Optional[catalog_pb2.ServiceInstance] = None) -> int:
        """Registers ``node`` (and ``service`` on it); returns the raft index."""
        req = catalog_pb2.RegisterRequest(node=catalog_pb2.Node(name=node, address=address))
        if service is not None:
            req.service.CopyFrom(service)
        return int(_unary(self._stub.Register, req).header.index)

    def deregister(self, node: str, *, service_id: str = "", check_id: str = "") -> int:
        req = catalog_pb2.DeregisterRequest(node=node, service_id=service_id, check_id=check_id)
        return int(_unary(self._stub.Deregister, req).header.index)

    def services(self) -> dict[str, list[str]]:
        r = _unary(self._stub.Services, catalog_pb2.ServicesRequest())
        return {name: list(t.tags) for name, t in r.services.items()}

    def watch_services(self, *, start_index: int = 0) -> Watch[str, catalog_pb2.ServiceSummary]:
        spec = Spec("WatchServices", lambda i: catalog_pb2.WatchServicesRequest(start_index=i), _watch.services_frame)
        return Watch(self._stub, spec, start_index)

    def watch_service(self, name: str, *, tags: Sequence[str] = (), start_index: int = 0) -> Watch[tuple[str, str], catalog_pb2.CatalogServiceEntry]:
        spec = Spec(
            "WatchService",
            lambda i: catalog_pb2.WatchServiceRequest(name=name, tags=list(tags), start_index=i),
            _watch.instances_frame,
        )
        return Watch(self._stub, spec, start_index)


class Health:
    """Instances with their checks (Consul's ``/v1/health``)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = catalog_pb2_grpc.HealthStub(channel)

    def watch_service(
        self, name: str, *, tags: Sequence[str] = (), passing_only: bool = False, start_index: int = 0
    ) -> Watch[tuple[str, str], catalog_pb2.ServiceEntry]:
        """Instances of ``name`` with their checks (only passing ones with
        ``passing_only``), keyed by (node, service id)."""
        spec = Spec(
            "WatchService",
            lambda i: catalog_pb2.HealthWatchServiceRequest(
                service=name, tags=list(tags), passing_only=passing_only, start_index=i
            ),
            _watch.instances_frame,
        )
        return Watch(self._stub, spec, start_index)


class Sessions:
    """Consul's sessions: what KV locks (``acquire``/``release``) are held with."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = session_pb2_grpc.SessionStub(channel)

    def create(
        self,
        *,
        name: str = "",
        ttl: str = "",
        node: str = "",
        lock_delay: Optional[float] = None,
        behavior: int = session_pb2.SESSION_BEHAVIOR_RELEASE,
    ) -> str:
        """Creates a session (on the agent's node unless ``node``; ``ttl`` as Consul's,
        e.g. "30s"; ``lock_delay`` in seconds, Consul's 15 s by default); returns its id."""
        req = _requests.session_create(name, ttl, node, lock_delay, behavior)
        return str(_unary(self._stub.Create, req).id)

    def renew(self, session_id: str) -> session_pb2.SessionInfo:
        info: session_pb2.SessionInfo = _unary(self._stub.Renew, session_pb2.SessionRenewRequest(id=session_id)).session
        return info

    def info(self, session_id: str) -> Optional[session_pb2.SessionInfo]:
        r = _unary(self._stub.Info, session_pb2.SessionInfoRequest(id=session_id))
        return r.session if r.HasField("session") else None

    def list(self) -> list[session_pb2.SessionInfo]:
        return list(_unary(self._stub.List, session_pb2.SessionListRequest()).sessions)

    def destroy(self, session_id: str) -> None:
        _unary(self._stub.Destroy, session_pb2.SessionDestroyRequest(id=session_id))


class Client:
    """A connection to a Rostra agent's gRPC API (``127.0.0.1:8502`` by default)."""

    def __init__(self, address: str = "127.0.0.1:8502", *, channel: Optional[grpc.Channel] = None) -> None:
        self.channel = channel or grpc.insecure_channel(address)
        self.kv = KV(self.channel)
        self.events = Events(self.channel)
        self.catalog = Catalog(self.channel)
        self.health = Health(self.channel)
        self.sessions = Sessions(self.channel)
        self._locks = lock_pb2_grpc.LockStub(self.channel)

    def lock(self, name: str, *, limit: int = 1, session_name: str = "") -> Lock:
        """A lock on KV prefix ``name`` (a semaphore of ``limit`` slots when > 1)."""
        return Lock(self._locks, name, limit, session_name)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Client", "Watch", "Lock", "KV", "Events", "Catalog", "Health", "Sessions", "RostraError", "LockLost", "Change"]
