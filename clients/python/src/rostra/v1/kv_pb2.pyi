from rostra.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KvPair(_message.Message):
    __slots__ = ("key", "value", "flags", "create_index", "modify_index", "lock_index", "session")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODIFY_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int
    lock_index: int
    session: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., flags: _Optional[int] = ..., create_index: _Optional[int] = ..., modify_index: _Optional[int] = ..., lock_index: _Optional[int] = ..., session: _Optional[str] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key", "consistency")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    key: str
    consistency: _common_pb2.Consistency
    def __init__(self, key: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("header", "kv")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    kv: KvPair
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., kv: _Optional[_Union[KvPair, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("prefix", "separator", "keys_only", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    KEYS_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    separator: str
    keys_only: bool
    consistency: _common_pb2.Consistency
    def __init__(self, prefix: _Optional[str] = ..., separator: _Optional[str] = ..., keys_only: bool = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("header", "kvs", "keys")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KVS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    kvs: _containers.RepeatedCompositeFieldContainer[KvPair]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., kvs: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("key", "value", "flags", "cas", "acquire", "release")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    flags: int
    cas: int
    acquire: str
    release: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., flags: _Optional[int] = ..., cas: _Optional[int] = ..., acquire: _Optional[str] = ..., release: _Optional[str] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("header", "succeeded")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    succeeded: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., succeeded: bool = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("key", "recurse", "cas")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RECURSE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    key: str
    recurse: bool
    cas: int
    def __init__(self, key: _Optional[str] = ..., recurse: bool = ..., cas: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("header", "succeeded")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    succeeded: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., succeeded: bool = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("key", "prefix", "start_index")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    key: str
    prefix: bool
    start_index: int
    def __init__(self, key: _Optional[str] = ..., prefix: bool = ..., start_index: _Optional[int] = ...) -> None: ...

class KvEvent(_message.Message):
    __slots__ = ("type", "kv")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[KvEvent.Type]
        TYPE_PUT: _ClassVar[KvEvent.Type]
        TYPE_DELETE: _ClassVar[KvEvent.Type]
    TYPE_UNSPECIFIED: KvEvent.Type
    TYPE_PUT: KvEvent.Type
    TYPE_DELETE: KvEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    type: KvEvent.Type
    kv: KvPair
    def __init__(self, type: _Optional[_Union[KvEvent.Type, str]] = ..., kv: _Optional[_Union[KvPair, _Mapping]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("kind", "index", "events", "reason", "header")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.WatchKind
    index: int
    events: _containers.RepeatedCompositeFieldContainer[KvEvent]
    reason: str
    header: _common_pb2.ResponseHeader
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., events: _Optional[_Iterable[_Union[KvEvent, _Mapping]]] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class TxnOp(_message.Message):
    __slots__ = ("verb", "key", "value", "flags", "index", "session")
    class Verb(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VERB_UNSPECIFIED: _ClassVar[TxnOp.Verb]
        VERB_SET: _ClassVar[TxnOp.Verb]
        VERB_CAS: _ClassVar[TxnOp.Verb]
        VERB_GET: _ClassVar[TxnOp.Verb]
        VERB_GET_TREE: _ClassVar[TxnOp.Verb]
        VERB_CHECK_INDEX: _ClassVar[TxnOp.Verb]
        VERB_CHECK_NOT_EXISTS: _ClassVar[TxnOp.Verb]
        VERB_DELETE: _ClassVar[TxnOp.Verb]
        VERB_DELETE_TREE: _ClassVar[TxnOp.Verb]
        VERB_DELETE_CAS: _ClassVar[TxnOp.Verb]
        VERB_LOCK: _ClassVar[TxnOp.Verb]
        VERB_UNLOCK: _ClassVar[TxnOp.Verb]
        VERB_GET_OR_EMPTY: _ClassVar[TxnOp.Verb]
        VERB_CHECK_SESSION: _ClassVar[TxnOp.Verb]
    VERB_UNSPECIFIED: TxnOp.Verb
    VERB_SET: TxnOp.Verb
    VERB_CAS: TxnOp.Verb
    VERB_GET: TxnOp.Verb
    VERB_GET_TREE: TxnOp.Verb
    VERB_CHECK_INDEX: TxnOp.Verb
    VERB_CHECK_NOT_EXISTS: TxnOp.Verb
    VERB_DELETE: TxnOp.Verb
    VERB_DELETE_TREE: TxnOp.Verb
    VERB_DELETE_CAS: TxnOp.Verb
    VERB_LOCK: TxnOp.Verb
    VERB_UNLOCK: TxnOp.Verb
    VERB_GET_OR_EMPTY: TxnOp.Verb
    VERB_CHECK_SESSION: TxnOp.Verb
    VERB_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    verb: TxnOp.Verb
    key: str
    value: bytes
    flags: int
    index: int
    session: str
    def __init__(self, verb: _Optional[_Union[TxnOp.Verb, str]] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., flags: _Optional[int] = ..., index: _Optional[int] = ..., session: _Optional[str] = ...) -> None: ...

class TxnRequest(_message.Message):
    __slots__ = ("ops", "consistency")
    OPS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[TxnOp]
    consistency: _common_pb2.Consistency
    def __init__(self, ops: _Optional[_Iterable[_Union[TxnOp, _Mapping]]] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class TxnError(_message.Message):
    __slots__ = ("op_index", "what")
    OP_INDEX_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    op_index: int
    what: str
    def __init__(self, op_index: _Optional[int] = ..., what: _Optional[str] = ...) -> None: ...

class TxnResponse(_message.Message):
    __slots__ = ("header", "succeeded", "results", "errors")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    succeeded: bool
    results: _containers.RepeatedCompositeFieldContainer[KvPair]
    errors: _containers.RepeatedCompositeFieldContainer[TxnError]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., succeeded: bool = ..., results: _Optional[_Iterable[_Union[KvPair, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[TxnError, _Mapping]]] = ...) -> None: ...
