from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXEC_EVENT_KIND_UNSPECIFIED: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_ACK: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_OUTPUT: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_EXIT: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_DECLINED: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_NO_ANSWER: _ClassVar[ExecEventKind]
    EXEC_EVENT_KIND_DONE: _ClassVar[ExecEventKind]
EXEC_EVENT_KIND_UNSPECIFIED: ExecEventKind
EXEC_EVENT_KIND_ACK: ExecEventKind
EXEC_EVENT_KIND_OUTPUT: ExecEventKind
EXEC_EVENT_KIND_EXIT: ExecEventKind
EXEC_EVENT_KIND_DECLINED: ExecEventKind
EXEC_EVENT_KIND_NO_ANSWER: ExecEventKind
EXEC_EVENT_KIND_DONE: ExecEventKind

class ExecRunRequest(_message.Message):
    __slots__ = ("command", "args", "node_filter", "service_filter", "tag_filter", "wait_ms")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    NODE_FILTER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTER_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    node_filter: str
    service_filter: str
    tag_filter: str
    wait_ms: int
    def __init__(self, command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., node_filter: _Optional[str] = ..., service_filter: _Optional[str] = ..., tag_filter: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ExecRunResponse(_message.Message):
    __slots__ = ("kind", "node", "output", "exit_code", "reason", "completed", "acknowledged")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    kind: ExecEventKind
    node: str
    output: bytes
    exit_code: int
    reason: str
    completed: int
    acknowledged: int
    def __init__(self, kind: _Optional[_Union[ExecEventKind, str]] = ..., node: _Optional[str] = ..., output: _Optional[bytes] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., completed: _Optional[int] = ..., acknowledged: _Optional[int] = ...) -> None: ...
