from rostra.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionBehavior(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_BEHAVIOR_UNSPECIFIED: _ClassVar[SessionBehavior]
    SESSION_BEHAVIOR_RELEASE: _ClassVar[SessionBehavior]
    SESSION_BEHAVIOR_DELETE: _ClassVar[SessionBehavior]
SESSION_BEHAVIOR_UNSPECIFIED: SessionBehavior
SESSION_BEHAVIOR_RELEASE: SessionBehavior
SESSION_BEHAVIOR_DELETE: SessionBehavior

class SessionInfo(_message.Message):
    __slots__ = ("id", "name", "node", "lock_delay_ns", "behavior", "ttl", "node_checks", "service_checks", "create_index", "modify_index")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LOCK_DELAY_NS_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    NODE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    CREATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODIFY_INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    node: str
    lock_delay_ns: int
    behavior: SessionBehavior
    ttl: str
    node_checks: _containers.RepeatedScalarFieldContainer[str]
    service_checks: _containers.RepeatedScalarFieldContainer[str]
    create_index: int
    modify_index: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., node: _Optional[str] = ..., lock_delay_ns: _Optional[int] = ..., behavior: _Optional[_Union[SessionBehavior, str]] = ..., ttl: _Optional[str] = ..., node_checks: _Optional[_Iterable[str]] = ..., service_checks: _Optional[_Iterable[str]] = ..., create_index: _Optional[int] = ..., modify_index: _Optional[int] = ...) -> None: ...

class SessionCreateRequest(_message.Message):
    __slots__ = ("name", "node", "lock_delay_ns", "behavior", "ttl", "node_checks", "service_checks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LOCK_DELAY_NS_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    NODE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    node: str
    lock_delay_ns: int
    behavior: SessionBehavior
    ttl: str
    node_checks: CheckList
    service_checks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., node: _Optional[str] = ..., lock_delay_ns: _Optional[int] = ..., behavior: _Optional[_Union[SessionBehavior, str]] = ..., ttl: _Optional[str] = ..., node_checks: _Optional[_Union[CheckList, _Mapping]] = ..., service_checks: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionCreateResponse(_message.Message):
    __slots__ = ("header", "id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    id: str
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., id: _Optional[str] = ...) -> None: ...

class SessionDestroyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SessionDestroyResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class SessionRenewRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SessionRenewResponse(_message.Message):
    __slots__ = ("header", "session")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    session: SessionInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., session: _Optional[_Union[SessionInfo, _Mapping]] = ...) -> None: ...

class SessionInfoRequest(_message.Message):
    __slots__ = ("id", "consistency")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    id: str
    consistency: _common_pb2.Consistency
    def __init__(self, id: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class SessionInfoResponse(_message.Message):
    __slots__ = ("header", "session")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    session: SessionInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., session: _Optional[_Union[SessionInfo, _Mapping]] = ...) -> None: ...

class SessionListRequest(_message.Message):
    __slots__ = ("consistency",)
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    consistency: _common_pb2.Consistency
    def __init__(self, consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class SessionListResponse(_message.Message):
    __slots__ = ("header", "sessions")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ...) -> None: ...

class SessionNodeRequest(_message.Message):
    __slots__ = ("node", "consistency")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    node: str
    consistency: _common_pb2.Consistency
    def __init__(self, node: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class SessionNodeResponse(_message.Message):
    __slots__ = ("header", "sessions")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ...) -> None: ...

class SessionWatchRequest(_message.Message):
    __slots__ = ("start_index",)
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    def __init__(self, start_index: _Optional[int] = ...) -> None: ...

class SessionWatchResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...
