from rostra.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATUS_UNSPECIFIED: _ClassVar[MemberStatus]
    MEMBER_STATUS_ALIVE: _ClassVar[MemberStatus]
    MEMBER_STATUS_FAILED: _ClassVar[MemberStatus]
    MEMBER_STATUS_LEFT: _ClassVar[MemberStatus]
MEMBER_STATUS_UNSPECIFIED: MemberStatus
MEMBER_STATUS_ALIVE: MemberStatus
MEMBER_STATUS_FAILED: MemberStatus
MEMBER_STATUS_LEFT: MemberStatus

class ForceLeaveRequest(_message.Message):
    __slots__ = ("node", "prune")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    node: str
    prune: bool
    def __init__(self, node: _Optional[str] = ..., prune: bool = ...) -> None: ...

class ForceLeaveResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class RemovePeerRequest(_message.Message):
    __slots__ = ("id", "address")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class RemovePeerResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class LeaderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaderResponse(_message.Message):
    __slots__ = ("header", "address", "leader_id", "node_name", "datacenter")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATACENTER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    address: str
    leader_id: int
    node_name: str
    datacenter: str
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., address: _Optional[str] = ..., leader_id: _Optional[int] = ..., node_name: _Optional[str] = ..., datacenter: _Optional[str] = ...) -> None: ...

class PeersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeersResponse(_message.Message):
    __slots__ = ("header", "addresses")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class RaftConfigurationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RaftServer(_message.Message):
    __slots__ = ("id", "node", "address", "grpc_address", "leader", "voter")
    ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    id: int
    node: str
    address: str
    grpc_address: str
    leader: bool
    voter: bool
    def __init__(self, id: _Optional[int] = ..., node: _Optional[str] = ..., address: _Optional[str] = ..., grpc_address: _Optional[str] = ..., leader: bool = ..., voter: bool = ...) -> None: ...

class RaftConfigurationResponse(_message.Message):
    __slots__ = ("header", "servers", "index")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    servers: _containers.RepeatedCompositeFieldContainer[RaftServer]
    index: int
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., servers: _Optional[_Iterable[_Union[RaftServer, _Mapping]]] = ..., index: _Optional[int] = ...) -> None: ...

class MetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetricsResponse(_message.Message):
    __slots__ = ("header", "writes", "proposals", "log_entries", "wal_fsyncs", "watchers", "query_wakeups", "stages")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    LOG_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    WAL_FSYNCS_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_WAKEUPS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    writes: int
    proposals: int
    log_entries: int
    wal_fsyncs: int
    watchers: int
    query_wakeups: int
    stages: _containers.RepeatedCompositeFieldContainer[StageTiming]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., writes: _Optional[int] = ..., proposals: _Optional[int] = ..., log_entries: _Optional[int] = ..., wal_fsyncs: _Optional[int] = ..., watchers: _Optional[int] = ..., query_wakeups: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("name", "count", "total_ns")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NS_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    total_ns: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., total_ns: _Optional[int] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("name", "address", "status", "server", "datacenter", "id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    DATACENTER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    status: MemberStatus
    server: bool
    datacenter: str
    id: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., status: _Optional[_Union[MemberStatus, str]] = ..., server: bool = ..., datacenter: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class MembersResponse(_message.Message):
    __slots__ = ("header", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...
