from rostra.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UserEvent(_message.Message):
    __slots__ = ("id", "name", "payload", "node_filter", "service_filter", "tag_filter", "ltime")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    NODE_FILTER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTER_FIELD_NUMBER: _ClassVar[int]
    LTIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    payload: bytes
    node_filter: str
    service_filter: str
    tag_filter: str
    ltime: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., payload: _Optional[bytes] = ..., node_filter: _Optional[str] = ..., service_filter: _Optional[str] = ..., tag_filter: _Optional[str] = ..., ltime: _Optional[int] = ...) -> None: ...

class EventFireRequest(_message.Message):
    __slots__ = ("name", "payload", "node_filter", "service_filter", "tag_filter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    NODE_FILTER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    payload: bytes
    node_filter: str
    service_filter: str
    tag_filter: str
    def __init__(self, name: _Optional[str] = ..., payload: _Optional[bytes] = ..., node_filter: _Optional[str] = ..., service_filter: _Optional[str] = ..., tag_filter: _Optional[str] = ...) -> None: ...

class EventFireResponse(_message.Message):
    __slots__ = ("header", "event")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    event: UserEvent
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., event: _Optional[_Union[UserEvent, _Mapping]] = ...) -> None: ...

class EventListRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EventListResponse(_message.Message):
    __slots__ = ("header", "events")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    events: _containers.RepeatedCompositeFieldContainer[UserEvent]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., events: _Optional[_Iterable[_Union[UserEvent, _Mapping]]] = ...) -> None: ...

class EventWatchRequest(_message.Message):
    __slots__ = ("name", "start_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_index: int
    def __init__(self, name: _Optional[str] = ..., start_index: _Optional[int] = ...) -> None: ...

class EventWatchResponse(_message.Message):
    __slots__ = ("kind", "index", "reason", "header", "upserted", "removed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.WatchKind
    index: int
    reason: str
    header: _common_pb2.ResponseHeader
    upserted: _containers.RepeatedCompositeFieldContainer[UserEvent]
    removed: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[UserEvent, _Mapping]]] = ..., removed: _Optional[_Iterable[int]] = ...) -> None: ...
