"""The asyncio client: the same surface as :mod:`rostra.client` over ``grpc.aio``.

``async for change in client.kv.watch("app/", prefix=True)`` resumes after a broken
stream like the sync watch; ``async with client.lock("jobs/nightly") as token:`` holds
a lock for the life of its stream.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Generic, Optional, Sequence

import grpc
import grpc.aio

from . import _requests, _watch
from ._requests import Bytes
from ._errors import RETRIABLE, LockLost, from_rpc
from ._watch import Change, Follower, K, Spec, V
from .client import MAX_BACKOFF
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


# The end-of-stream marker of `call.read()` (not in the type stubs).
_EOF: Any = getattr(grpc.aio, "EOF")


class Watch(Generic[K, V], AsyncIterator[Change[K, V]]):
    """Async-iterates a watch's changes, resuming after a broken stream."""

    def __init__(self, stub: Any, spec: Spec[K, V], start_index: int = 0) -> None:
        self._stub, self._spec = stub, spec
        self._follower: Follower[K, V] = Follower.starting_at(start_index)
        self._call: Any = None
        self._closed = False
        self._backoff = 0.05

    def __aiter__(self) -> Watch[K, V]:
        return self

    async def __anext__(self) -> Change[K, V]:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._call is None:
                method = getattr(self._stub, self._spec.method)
                self._call = method(self._spec.request(self._follower.resume_index()))
            try:
                response = await self._call.read()
            except grpc.RpcError as e:
                if self._closed:
                    raise StopAsyncIteration from None
                if e.code() not in RETRIABLE:
                    raise from_rpc(e) from None
                await self._broken()
                continue
            if response is _EOF:
                await self._broken()
                continue
            self._backoff = 0.05
            change = self._follower.feed(self._spec.frame(response))
            if change is not None:
                return change

    async def _broken(self) -> None:
        self._call = None
        self._follower.reopened()
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    @property
    def index(self) -> int:
        return self._follower.index

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class Lock:
    """A lock held while its stream is open; see :class:`rostra.client.Lock`."""

    def __init__(self, stub: Any, name: str, limit: int, session_name: str) -> None:
        self._stub = stub
        self._request = lock_pb2.LockHoldRequest(name=name, limit=limit, session_name=session_name)
        self._call: Any = None
        self._watcher: Optional[asyncio.Task[None]] = None
        self.token: Optional[int] = None
        self.session = ""
        self.key = ""
        self.lost = asyncio.Event()
        self.lost_reason = ""

    async def acquire(self) -> int:
        self._call = self._stub.Hold(self._request)
        try:
            while True:
                r = await self._call.read()
                if r is _EOF:
                    raise LockLost(grpc.StatusCode.UNAVAILABLE, "the server ended the lock stream")
                which = r.WhichOneof("event")
                if which == "acquired":
                    self.token, self.session, self.key = r.acquired.token, r.acquired.session, r.acquired.key
                    self._watcher = asyncio.ensure_future(self._watch())
                    return int(r.acquired.token)
                if which == "lost":
                    raise LockLost(grpc.StatusCode.ABORTED, r.lost.reason)
        except grpc.RpcError as e:
            raise from_rpc(e) from None

    async def _watch(self) -> None:
        try:
            while True:
                r = await self._call.read()
                if r is _EOF:
                    self.lost_reason = "the server ended the lock stream"
                    break
                if r.WhichOneof("event") == "lost":
                    self.lost_reason = r.lost.reason
                    break
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            self.lost_reason = from_rpc(e).details
        except asyncio.CancelledError:
            return
        self.lost.set()

    async def release(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
        self._call = self._watcher = None

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def _unary(f: Any, request: Any) -> Any:
    try:
        return await f(request)
    except grpc.RpcError as e:
        raise from_rpc(e) from None


class KV:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = kv_pb2_grpc.KVStub(channel)

    async def get(self, key: str, *, consistency: common_pb2.Consistency = common_pb2.CONSISTENCY_DEFAULT) -> Optional[kv_pb2.KvPair]:
        r = await _unary(self._stub.Get, kv_pb2.GetRequest(key=key, consistency=consistency))
        return r.kv if r.HasField("kv") else None

    async def list(self, prefix: str, *, consistency: common_pb2.Consistency = common_pb2.CONSISTENCY_DEFAULT) -> list[kv_pb2.KvPair]:
        r = await _unary(self._stub.List, kv_pb2.ListRequest(prefix=prefix, consistency=consistency))
        return list(r.kvs)

    async def put(
        self,
        key: str,
        value: Bytes = b"",
        *,
        flags: int = 0,
        cas: Optional[int] = None,
        acquire: Optional[str] = None,
        release: Optional[str] = None,
    ) -> bool:
        req = _requests.put(key, value, flags, cas, acquire, release)
        return bool((await _unary(self._stub.Put, req)).succeeded)

    async def delete(self, key: str, *, recurse: bool = False, cas: Optional[int] = None) -> bool:
        return bool((await _unary(self._stub.Delete, _requests.delete(key, recurse, cas))).succeeded)

    def watch(self, key: str, *, prefix: bool = False, start_index: int = 0) -> Watch[str, kv_pb2.KvPair]:
        spec = Spec("Watch", lambda i: kv_pb2.WatchRequest(key=key, prefix=prefix, start_index=i), _watch.kv_frame)
        return Watch(self._stub, spec, start_index)


class Events:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = event_pb2_grpc.EventStub(channel)

    async def fire(self, name: str, payload: Bytes = b"", *, node: str = "", service: str = "", tag: str = "") -> event_pb2.UserEvent:
        req = event_pb2.EventFireRequest(name=name, payload=_requests.to_bytes(payload), node_filter=node, service_filter=service, tag_filter=tag)
        event: event_pb2.UserEvent = (await _unary(self._stub.Fire, req)).event
        return event

    def watch(self, name: str = "", *, start_index: int = 0) -> Watch[int, event_pb2.UserEvent]:
        spec = Spec("Watch", lambda i: event_pb2.EventWatchRequest(name=name, start_index=i), _watch.event_frame)
        return Watch(self._stub, spec, start_index)


class Catalog:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = catalog_pb2_grpc.CatalogStub(channel)

    async def register(self, node: str, address: str, service: Optional[catalog_pb2.ServiceInstance] = None) -> int:
        req = catalog_pb2.RegisterRequest(node=catalog_pb2.Node(name=node, address=address))
        if service is not None:
            req.service.CopyFrom(service)
        return int((await _unary(self._stub.Register, req)).header.index)

    def watch_services(self, *, start_index: int = 0) -> Watch[str, catalog_pb2.ServiceSummary]:
        spec = Spec("WatchServices", lambda i: catalog_pb2.WatchServicesRequest(start_index=i), _watch.services_frame)
        return Watch(self._stub, spec, start_index)


class Health:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = catalog_pb2_grpc.HealthStub(channel)

    def watch_service(
        self, name: str, *, tags: Sequence[str] = (), passing_only: bool = False, start_index: int = 0
    ) -> Watch[tuple[str, str], catalog_pb2.ServiceEntry]:
        spec = Spec(
            "WatchService",
            lambda i: catalog_pb2.HealthWatchServiceRequest(
                service=name, tags=list(tags), passing_only=passing_only, start_index=i
            ),
            _watch.instances_frame,
        )
        return Watch(self._stub, spec, start_index)


class Sessions:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = session_pb2_grpc.SessionStub(channel)

    async def create(
        self,
        *,
        name: str = "",
        ttl: str = "",
        node: str = "",
        lock_delay: Optional[float] = None,
        behavior: int = session_pb2.SESSION_BEHAVIOR_RELEASE,
    ) -> str:
        req = _requests.session_create(name, ttl, node, lock_delay, behavior)
        return str((await _unary(self._stub.Create, req)).id)

    async def renew(self, session_id: str) -> session_pb2.SessionInfo:
        info: session_pb2.SessionInfo = (await _unary(self._stub.Renew, session_pb2.SessionRenewRequest(id=session_id))).session
        return info

    async def info(self, session_id: str) -> Optional[session_pb2.SessionInfo]:
        r = await _unary(self._stub.Info, session_pb2.SessionInfoRequest(id=session_id))
        return r.session if r.HasField("session") else None

    async def list(self) -> list[session_pb2.SessionInfo]:
        return list((await _unary(self._stub.List, session_pb2.SessionListRequest())).sessions)

    async def destroy(self, session_id: str) -> None:
        await _unary(self._stub.Destroy, session_pb2.SessionDestroyRequest(id=session_id))


class AsyncClient:
    """An asyncio connection to a Rostra agent's gRPC API."""

    def __init__(self, address: str = "127.0.0.1:8502") -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.kv = KV(self.channel)
        self.events = Events(self.channel)
        self.catalog = Catalog(self.channel)
        self.health = Health(self.channel)
        self.sessions = Sessions(self.channel)
        self._locks = lock_pb2_grpc.LockStub(self.channel)

    def lock(self, name: str, *, limit: int = 1, session_name: str = "") -> Lock:
        return Lock(self._locks, name, limit, session_name)

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
