"""Requests built the same way by the sync and the asyncio client."""

from __future__ import annotations

from typing import Optional, Union

from .v1 import kv_pb2, session_pb2

Bytes = Union[bytes, str]


def to_bytes(v: Bytes) -> bytes:
    return v.encode() if isinstance(v, str) else v


def put(
    key: str,
    value: Bytes,
    flags: int,
    cas: Optional[int],
    acquire: Optional[str],
    release: Optional[str],
) -> kv_pb2.PutRequest:
    req = kv_pb2.PutRequest(key=key, value=to_bytes(value), flags=flags)
    if cas is not None:
        req.cas = cas
    if acquire is not None:
        req.acquire = acquire
    if release is not None:
        req.release = release
    return req


def delete(key: str, recurse: bool, cas: Optional[int]) -> kv_pb2.DeleteRequest:
    req = kv_pb2.DeleteRequest(key=key, recurse=recurse)
    if cas is not None:
        req.cas = cas
    return req


def session_create(
    name: str, ttl: str, node: str, lock_delay: Optional[float], behavior: int
) -> session_pb2.SessionCreateRequest:
    req = session_pb2.SessionCreateRequest(name=name, ttl=ttl, node=node, behavior=behavior)  # type: ignore[arg-type]
    if lock_delay is not None:
        req.lock_delay_ns = int(lock_delay * 1e9)
    return req
