from rostra.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATUS_UNSPECIFIED: _ClassVar[HealthStatus]
    HEALTH_STATUS_PASSING: _ClassVar[HealthStatus]
    HEALTH_STATUS_WARNING: _ClassVar[HealthStatus]
    HEALTH_STATUS_CRITICAL: _ClassVar[HealthStatus]
HEALTH_STATUS_UNSPECIFIED: HealthStatus
HEALTH_STATUS_PASSING: HealthStatus
HEALTH_STATUS_WARNING: HealthStatus
HEALTH_STATUS_CRITICAL: HealthStatus

class Node(_message.Message):
    __slots__ = ("id", "name", "address", "datacenter", "tagged_addresses", "meta", "create_index", "modify_index")
    class TaggedAddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATACENTER_FIELD_NUMBER: _ClassVar[int]
    TAGGED_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    CREATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODIFY_INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    address: str
    datacenter: str
    tagged_addresses: _containers.ScalarMap[str, str]
    meta: _containers.ScalarMap[str, str]
    create_index: int
    modify_index: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., datacenter: _Optional[str] = ..., tagged_addresses: _Optional[_Mapping[str, str]] = ..., meta: _Optional[_Mapping[str, str]] = ..., create_index: _Optional[int] = ..., modify_index: _Optional[int] = ...) -> None: ...

class ServiceInstance(_message.Message):
    __slots__ = ("node", "id", "name", "tags", "address", "port", "meta", "weight_passing", "weight_warning", "enable_tag_override", "create_index", "modify_index", "tagged_addresses", "kind", "proxy_json", "locality")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TaggedAddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ServiceAddress
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ServiceAddress, _Mapping]] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_PASSING_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_WARNING_FIELD_NUMBER: _ClassVar[int]
    ENABLE_TAG_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    CREATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODIFY_INDEX_FIELD_NUMBER: _ClassVar[int]
    TAGGED_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROXY_JSON_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    node: str
    id: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    address: str
    port: int
    meta: _containers.ScalarMap[str, str]
    weight_passing: int
    weight_warning: int
    enable_tag_override: bool
    create_index: int
    modify_index: int
    tagged_addresses: _containers.MessageMap[str, ServiceAddress]
    kind: str
    proxy_json: str
    locality: Locality
    def __init__(self, node: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., address: _Optional[str] = ..., port: _Optional[int] = ..., meta: _Optional[_Mapping[str, str]] = ..., weight_passing: _Optional[int] = ..., weight_warning: _Optional[int] = ..., enable_tag_override: bool = ..., create_index: _Optional[int] = ..., modify_index: _Optional[int] = ..., tagged_addresses: _Optional[_Mapping[str, ServiceAddress]] = ..., kind: _Optional[str] = ..., proxy_json: _Optional[str] = ..., locality: _Optional[_Union[Locality, _Mapping]] = ...) -> None: ...

class ServiceAddress(_message.Message):
    __slots__ = ("address", "port")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class Locality(_message.Message):
    __slots__ = ("region", "zone")
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    region: str
    zone: str
    def __init__(self, region: _Optional[str] = ..., zone: _Optional[str] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("node", "check_id", "name", "status", "notes", "output", "service_id", "service_name", "service_tags", "type", "create_index", "modify_index", "interval_ns", "timeout_ns", "http", "tcp", "deregister_critical_service_after_ns")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TAGS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODIFY_INDEX_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_NS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_NS_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    DEREGISTER_CRITICAL_SERVICE_AFTER_NS_FIELD_NUMBER: _ClassVar[int]
    node: str
    check_id: str
    name: str
    status: HealthStatus
    notes: str
    output: str
    service_id: str
    service_name: str
    service_tags: _containers.RepeatedScalarFieldContainer[str]
    type: str
    create_index: int
    modify_index: int
    interval_ns: int
    timeout_ns: int
    http: str
    tcp: str
    deregister_critical_service_after_ns: int
    def __init__(self, node: _Optional[str] = ..., check_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[HealthStatus, str]] = ..., notes: _Optional[str] = ..., output: _Optional[str] = ..., service_id: _Optional[str] = ..., service_name: _Optional[str] = ..., service_tags: _Optional[_Iterable[str]] = ..., type: _Optional[str] = ..., create_index: _Optional[int] = ..., modify_index: _Optional[int] = ..., interval_ns: _Optional[int] = ..., timeout_ns: _Optional[int] = ..., http: _Optional[str] = ..., tcp: _Optional[str] = ..., deregister_critical_service_after_ns: _Optional[int] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("node", "skip_node_update", "service", "checks")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SKIP_NODE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    skip_node_update: bool
    service: ServiceInstance
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., skip_node_update: bool = ..., service: _Optional[_Union[ServiceInstance, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("node", "service_id", "check_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    service_id: str
    check_id: str
    def __init__(self, node: _Optional[str] = ..., service_id: _Optional[str] = ..., check_id: _Optional[str] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class NodesRequest(_message.Message):
    __slots__ = ("consistency",)
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    consistency: _common_pb2.Consistency
    def __init__(self, consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class NodesResponse(_message.Message):
    __slots__ = ("header", "nodes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class ServicesRequest(_message.Message):
    __slots__ = ("consistency",)
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    consistency: _common_pb2.Consistency
    def __init__(self, consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class ServiceTags(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ServicesResponse(_message.Message):
    __slots__ = ("header", "services")
    class ServicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ServiceTags
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ServiceTags, _Mapping]] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    services: _containers.MessageMap[str, ServiceTags]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., services: _Optional[_Mapping[str, ServiceTags]] = ...) -> None: ...

class ServiceRequest(_message.Message):
    __slots__ = ("name", "tags", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    consistency: _common_pb2.Consistency
    def __init__(self, name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class CatalogServiceEntry(_message.Message):
    __slots__ = ("node", "service")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    node: Node
    service: ServiceInstance
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., service: _Optional[_Union[ServiceInstance, _Mapping]] = ...) -> None: ...

class ServiceResponse(_message.Message):
    __slots__ = ("header", "instances")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    instances: _containers.RepeatedCompositeFieldContainer[CatalogServiceEntry]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[CatalogServiceEntry, _Mapping]]] = ...) -> None: ...

class NodeRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: _common_pb2.Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class NodeResponse(_message.Message):
    __slots__ = ("header", "node", "services")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    node: Node
    services: _containers.RepeatedCompositeFieldContainer[ServiceInstance]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., services: _Optional[_Iterable[_Union[ServiceInstance, _Mapping]]] = ...) -> None: ...

class HealthNodeRequest(_message.Message):
    __slots__ = ("node", "consistency")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    node: str
    consistency: _common_pb2.Consistency
    def __init__(self, node: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class HealthNodeResponse(_message.Message):
    __slots__ = ("header", "checks")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class HealthChecksRequest(_message.Message):
    __slots__ = ("service", "consistency")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    service: str
    consistency: _common_pb2.Consistency
    def __init__(self, service: _Optional[str] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class HealthChecksResponse(_message.Message):
    __slots__ = ("header", "checks")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class HealthStateRequest(_message.Message):
    __slots__ = ("state", "consistency")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    state: HealthStatus
    consistency: _common_pb2.Consistency
    def __init__(self, state: _Optional[_Union[HealthStatus, str]] = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class HealthStateResponse(_message.Message):
    __slots__ = ("header", "checks")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class HealthServiceRequest(_message.Message):
    __slots__ = ("service", "tags", "passing_only", "consistency")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PASSING_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    service: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    passing_only: bool
    consistency: _common_pb2.Consistency
    def __init__(self, service: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., passing_only: bool = ..., consistency: _Optional[_Union[_common_pb2.Consistency, str]] = ...) -> None: ...

class ServiceEntry(_message.Message):
    __slots__ = ("node", "service", "checks")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    service: ServiceInstance
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., service: _Optional[_Union[ServiceInstance, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class HealthServiceResponse(_message.Message):
    __slots__ = ("header", "entries")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    entries: _containers.RepeatedCompositeFieldContainer[ServiceEntry]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[ServiceEntry, _Mapping]]] = ...) -> None: ...

class InstanceRef(_message.Message):
    __slots__ = ("node", "service_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    service_id: str
    def __init__(self, node: _Optional[str] = ..., service_id: _Optional[str] = ...) -> None: ...

class CheckRef(_message.Message):
    __slots__ = ("node", "check_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    check_id: str
    def __init__(self, node: _Optional[str] = ..., check_id: _Optional[str] = ...) -> None: ...

class WatchNodesRequest(_message.Message):
    __slots__ = ("start_index",)
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    def __init__(self, start_index: _Optional[int] = ...) -> None: ...

class WatchNodesResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[Node]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchServicesRequest(_message.Message):
    __slots__ = ("start_index",)
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    def __init__(self, start_index: _Optional[int] = ...) -> None: ...

class ServiceSummary(_message.Message):
    __slots__ = ("name", "tags")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchServicesResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[ServiceSummary]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[ServiceSummary, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchServiceRequest(_message.Message):
    __slots__ = ("name", "tags", "start_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    start_index: int
    def __init__(self, name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., start_index: _Optional[int] = ...) -> None: ...

class WatchServiceResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[CatalogServiceEntry]
    removed: _containers.RepeatedCompositeFieldContainer[InstanceRef]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[CatalogServiceEntry, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[InstanceRef, _Mapping]]] = ...) -> None: ...

class HealthWatchServiceRequest(_message.Message):
    __slots__ = ("service", "tags", "passing_only", "start_index")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PASSING_ONLY_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    service: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    passing_only: bool
    start_index: int
    def __init__(self, service: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., passing_only: bool = ..., start_index: _Optional[int] = ...) -> None: ...

class HealthWatchServiceResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[ServiceEntry]
    removed: _containers.RepeatedCompositeFieldContainer[InstanceRef]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[ServiceEntry, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[InstanceRef, _Mapping]]] = ...) -> None: ...

class HealthWatchChecksRequest(_message.Message):
    __slots__ = ("service", "start_index")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    service: str
    start_index: int
    def __init__(self, service: _Optional[str] = ..., start_index: _Optional[int] = ...) -> None: ...

class HealthWatchChecksResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    removed: _containers.RepeatedCompositeFieldContainer[CheckRef]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[CheckRef, _Mapping]]] = ...) -> None: ...

class HealthWatchStateRequest(_message.Message):
    __slots__ = ("state", "start_index")
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    state: HealthStatus
    start_index: int
    def __init__(self, state: _Optional[_Union[HealthStatus, str]] = ..., start_index: _Optional[int] = ...) -> None: ...

class HealthWatchStateResponse(_message.Message):
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
    upserted: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    removed: _containers.RepeatedCompositeFieldContainer[CheckRef]
    def __init__(self, kind: _Optional[_Union[_common_pb2.WatchKind, str]] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., upserted: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[CheckRef, _Mapping]]] = ...) -> None: ...
