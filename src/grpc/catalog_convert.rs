//! Conversions between catalog/health protobuf messages and domain types.

use crate::pb;
use crate::service::catalog::{CheckView, ServiceEntry};
use crate::state::catalog::{
    CheckSpec, CheckStatus, HealthCheck, Node, ServiceExtra, ServiceInstance, Weights,
};

pub fn node_out(n: Node) -> pb::Node {
    pb::Node {
        id: n.id,
        name: n.name,
        address: n.address,
        datacenter: n.datacenter,
        tagged_addresses: n.tagged_addresses.into_iter().collect(),
        meta: n.meta.into_iter().collect(),
        create_index: n.create_index,
        modify_index: n.modify_index,
    }
}

pub fn node_in(n: pb::Node) -> Node {
    Node {
        id: n.id,
        name: n.name,
        address: n.address,
        datacenter: n.datacenter,
        tagged_addresses: n.tagged_addresses.into_iter().collect(),
        meta: n.meta.into_iter().collect(),
        create_index: n.create_index,
        modify_index: n.modify_index,
    }
}

pub fn service_out(s: ServiceInstance) -> pb::ServiceInstance {
    pb::ServiceInstance {
        node: s.node,
        id: s.id,
        name: s.name,
        tags: s.tags,
        address: s.address,
        port: s.port as u32,
        meta: s.meta.into_iter().collect(),
        weight_passing: Some(s.weights.passing),
        weight_warning: Some(s.weights.warning),
        enable_tag_override: s.enable_tag_override,
        create_index: s.create_index,
        modify_index: s.modify_index,
        tagged_addresses: s
            .extra
            .tagged_addresses
            .into_iter()
            .map(|(k, (address, port))| {
                let port = u32::from(port);
                (k, pb::ServiceAddress { address, port })
            })
            .collect(),
        kind: s.extra.kind,
        proxy_json: s.extra.proxy,
        locality: s
            .extra
            .locality
            .map(|(region, zone)| pb::Locality { region, zone }),
    }
}

pub fn service_in(s: pb::ServiceInstance, node: &str) -> Result<ServiceInstance, tonic::Status> {
    let port = crate::service::catalog::service_port(u64::from(s.port))?;
    let tagged_addresses = s
        .tagged_addresses
        .into_iter()
        .map(|(name, a)| {
            let port = crate::service::catalog::service_port(u64::from(a.port))?;
            Ok((name, (a.address, port)))
        })
        .collect::<Result<_, tonic::Status>>()?;
    Ok(ServiceInstance {
        node: node.to_string(),
        id: s.id,
        name: s.name,
        tags: s.tags,
        address: s.address,
        port,
        meta: s.meta.into_iter().collect(),
        weights: Weights {
            passing: s.weight_passing.unwrap_or(Weights::default().passing),
            warning: s.weight_warning.unwrap_or(Weights::default().warning),
        },
        enable_tag_override: s.enable_tag_override,
        create_index: s.create_index,
        modify_index: s.modify_index,
        extra: ServiceExtra {
            tagged_addresses,
            kind: s.kind,
            proxy: s.proxy_json,
            locality: s.locality.map(|l| (l.region, l.zone)),
        },
    })
}

pub fn status_out(s: CheckStatus) -> pb::HealthStatus {
    match s {
        CheckStatus::Passing => pb::HealthStatus::Passing,
        CheckStatus::Warning => pb::HealthStatus::Warning,
        CheckStatus::Critical => pb::HealthStatus::Critical,
    }
}

/// `None` for UNSPECIFIED.
pub fn status_in(value: i32) -> Result<Option<CheckStatus>, tonic::Status> {
    match pb::HealthStatus::try_from(value) {
        Ok(pb::HealthStatus::Unspecified) => Ok(None),
        Ok(pb::HealthStatus::Passing) => Ok(Some(CheckStatus::Passing)),
        Ok(pb::HealthStatus::Warning) => Ok(Some(CheckStatus::Warning)),
        Ok(pb::HealthStatus::Critical) => Ok(Some(CheckStatus::Critical)),
        Err(_) => Err(tonic::Status::invalid_argument(format!(
            "unknown health status {value}"
        ))),
    }
}

pub fn check_out(c: CheckView) -> pb::HealthCheck {
    let check = c.check;
    pb::HealthCheck {
        node: check.node,
        check_id: check.check_id,
        name: check.name,
        status: status_out(check.status) as i32,
        notes: check.notes,
        output: check.output,
        service_id: check.service_id,
        service_name: c.service_name,
        service_tags: c.service_tags,
        r#type: check.spec.check_type,
        create_index: check.create_index,
        modify_index: check.modify_index,
        interval_ns: check.spec.interval_ns,
        timeout_ns: check.spec.timeout_ns,
        http: check.spec.http,
        tcp: check.spec.tcp,
        deregister_critical_service_after_ns: check.spec.deregister_critical_service_after_ns,
    }
}

pub fn check_in(c: pb::HealthCheck, node: &str) -> Result<HealthCheck, tonic::Status> {
    let status = status_in(c.status)?.unwrap_or(CheckStatus::Critical);
    Ok(HealthCheck {
        node: node.to_string(),
        check_id: c.check_id,
        name: c.name,
        status,
        notes: c.notes,
        output: c.output,
        service_id: c.service_id,
        spec: CheckSpec {
            check_type: c.r#type,
            interval_ns: c.interval_ns,
            timeout_ns: c.timeout_ns,
            http: c.http,
            tcp: c.tcp,
            deregister_critical_service_after_ns: c.deregister_critical_service_after_ns,
        },
        create_index: c.create_index,
        modify_index: c.modify_index,
    })
}

/// A check as a client sees it (with its service's name and tags).
pub fn check_view_in(c: pb::HealthCheck) -> Result<CheckView, tonic::Status> {
    let (service_name, service_tags) = (c.service_name.clone(), c.service_tags.clone());
    let node = c.node.clone();
    Ok(CheckView {
        check: check_in(c, &node)?,
        service_name,
        service_tags,
    })
}

pub fn entry_in(e: pb::ServiceEntry) -> Result<ServiceEntry, tonic::Status> {
    let node = node_in(e.node.unwrap_or_default());
    let service = service_in(e.service.unwrap_or_default(), &node.name)?;
    Ok(ServiceEntry {
        node,
        service,
        checks: e
            .checks
            .into_iter()
            .map(check_view_in)
            .collect::<Result<_, _>>()?,
    })
}

pub fn entry_out(e: ServiceEntry) -> pb::ServiceEntry {
    pb::ServiceEntry {
        node: Some(node_out(e.node)),
        service: Some(service_out(e.service)),
        checks: e.checks.into_iter().map(check_out).collect(),
    }
}

#[cfg(test)]
mod proptests {
    //! Catalog requests from the wire: any bytes as a `RegisterRequest`, any port and
    //! status numbers; conversions keep what they are given or refuse it with a reason.

    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::config::arbitrary;

    fn instance() -> impl Strategy<Value = pb::ServiceInstance> {
        (
            any::<String>(),
            prop::collection::vec(any::<String>(), 0..3),
            prop_oneof![0u32..=65_535, any::<u32>()],
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
            prop::option::of(any::<u32>()),
            any::<bool>(),
        )
            .prop_map(
                |(name, tags, port, meta, weight, eto)| pb::ServiceInstance {
                    id: name.clone(),
                    name,
                    tags,
                    port,
                    meta: meta.into_iter().collect(),
                    weight_passing: weight,
                    weight_warning: weight,
                    enable_tag_override: eto,
                    ..Default::default()
                },
            )
    }

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn any_bytes_decode_or_are_refused(bytes in arbitrary::hostile_bytes()) {
            if let Ok(req) = pb::RegisterRequest::decode(bytes.as_slice()) {
                let node = node_in(req.node.unwrap_or_default());
                if let Some(s) = req.service {
                    let _ = service_in(s, &node.name);
                }
                for c in req.checks {
                    if let Err(s) = check_in(c, &node.name) {
                        prop_assert_eq!(s.code(), tonic::Code::InvalidArgument);
                    }
                }
            }
            if let Ok(e) = pb::ServiceEntry::decode(bytes.as_slice()) {
                let _ = entry_in(e);
            }
        }

        #[test]
        fn instances_round_trip_or_refuse_the_port(s in instance()) {
            let wire = s.encode_to_vec();
            let s = pb::ServiceInstance::decode(wire.as_slice()).unwrap();
            let port = s.port;
            match service_in(s.clone(), "n1") {
                Ok(domain) => {
                    let mut back = service_out(domain);
                    prop_assert!(port <= 65_535);
                    // Weights default when unset; the rest comes back as sent.
                    back.weight_passing = s.weight_passing;
                    back.weight_warning = s.weight_warning;
                    back.node = s.node.clone();
                    back.meta = s.meta.clone(); // a map: order is the domain's
                    prop_assert_eq!(back, s);
                }
                Err(status) => {
                    prop_assert!(port > 65_535);
                    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                }
            }
        }

        #[test]
        fn statuses_are_known_or_refused(value in any::<i32>()) {
            match status_in(value) {
                Ok(Some(s)) => prop_assert_eq!(status_out(s) as i32, value),
                Ok(None) => prop_assert_eq!(value, 0),
                Err(status) => {
                    prop_assert!(!(0..4).contains(&value));
                    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                }
            }
        }
    }
}
