from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LockHoldRequest(_message.Message):
    __slots__ = ("name", "limit", "session_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SESSION_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    session_name: str
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ..., session_name: _Optional[str] = ...) -> None: ...

class LockHoldResponse(_message.Message):
    __slots__ = ("queued", "acquired", "lost")
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    queued: LockQueued
    acquired: LockAcquired
    lost: LockLost
    def __init__(self, queued: _Optional[_Union[LockQueued, _Mapping]] = ..., acquired: _Optional[_Union[LockAcquired, _Mapping]] = ..., lost: _Optional[_Union[LockLost, _Mapping]] = ...) -> None: ...

class LockQueued(_message.Message):
    __slots__ = ("ahead",)
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    ahead: int
    def __init__(self, ahead: _Optional[int] = ...) -> None: ...

class LockAcquired(_message.Message):
    __slots__ = ("token", "session", "key")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    token: int
    session: str
    key: str
    def __init__(self, token: _Optional[int] = ..., session: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class LockLost(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...
