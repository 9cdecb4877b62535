from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_UNSPECIFIED: _ClassVar[Consistency]
    CONSISTENCY_DEFAULT: _ClassVar[Consistency]
    CONSISTENCY_STALE: _ClassVar[Consistency]
    CONSISTENCY_CONSISTENT: _ClassVar[Consistency]

class WatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_KIND_UNSPECIFIED: _ClassVar[WatchKind]
    WATCH_KIND_SNAPSHOT: _ClassVar[WatchKind]
    WATCH_KIND_SYNCED: _ClassVar[WatchKind]
    WATCH_KIND_CHANGES: _ClassVar[WatchKind]
    WATCH_KIND_RESET: _ClassVar[WatchKind]
CONSISTENCY_UNSPECIFIED: Consistency
CONSISTENCY_DEFAULT: Consistency
CONSISTENCY_STALE: Consistency
CONSISTENCY_CONSISTENT: Consistency
WATCH_KIND_UNSPECIFIED: WatchKind
WATCH_KIND_SNAPSHOT: WatchKind
WATCH_KIND_SYNCED: WatchKind
WATCH_KIND_CHANGES: WatchKind
WATCH_KIND_RESET: WatchKind

class ResponseHeader(_message.Message):
    __slots__ = ("index", "node_id", "term", "known_leader", "last_contact_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    KNOWN_LEADER_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    node_id: int
    term: int
    known_leader: bool
    last_contact_ms: int
    def __init__(self, index: _Optional[int] = ..., node_id: _Optional[int] = ..., term: _Optional[int] = ..., known_leader: bool = ..., last_contact_ms: _Optional[int] = ...) -> None: ...
