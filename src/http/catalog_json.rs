//! Consul's JSON for catalog and health objects (spec §5.3, §7.2), in Consul's field
//! order; lists are `[]`, never null.

use serde_json::{json, Value};

use crate::agent::definition::ServiceDefinition;
use crate::service::catalog::{CheckView, ServiceEntry};
use crate::state::catalog::{HealthCheck, Node, ServiceExtra, ServiceInstance};

/// Go's `time.Duration.String()` for the values checks use ("15s", "1m30s", "0s").
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1.0)
        } else if ns < 1_000_000 {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        return format!("{}{unit}", trim(ns as f64 / div));
    }
    let total_s = ns as f64 / 1e9;
    let h = (total_s / 3600.0).floor() as u64;
    let m = ((total_s - h as f64 * 3600.0) / 60.0).floor() as u64;
    let s = total_s - h as f64 * 3600.0 - m as f64 * 60.0;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim(s)));
    out
}

fn trim(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn node(n: &Node) -> Value {
    json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": n.tagged_addresses,
        "Meta": n.meta,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

/// Consul's default `Proxy` object, for services registered without one.
fn empty_proxy() -> Value {
    json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

/// Adds a service's mesh and topology fields to `v` under Consul's names (`prefix` is
/// "Service" in catalog entries, "" in AgentService objects), leaving out the
/// `omitempty` ones when empty. `Kind` is `omitempty` only in AgentService.
fn extra_fields(v: &mut Value, x: &ServiceExtra, prefix: &str) {
    if !x.kind.is_empty() || !prefix.is_empty() {
        v[format!("{prefix}Kind")] = json!(x.kind);
    }
    if !x.tagged_addresses.is_empty() {
        let tagged: serde_json::Map<String, Value> = x
            .tagged_addresses
            .iter()
            .map(|(k, (a, p))| (k.clone(), json!({"Address": a, "Port": p})))
            .collect();
        v[format!("{prefix}TaggedAddresses")] = Value::Object(tagged);
    }
    v[format!("{prefix}Proxy")] = serde_json::from_str(&x.proxy).unwrap_or_else(|_| empty_proxy());
    if let Some((region, zone)) = &x.locality {
        v[format!("{prefix}Locality")] = json!({"Region": region, "Zone": zone});
    }
}

fn weights(s: &ServiceInstance) -> Value {
    json!({"Passing": s.weights.passing, "Warning": s.weights.warning})
}

/// `/v1/catalog/service/<name>` entries.
pub fn catalog_service(n: &Node, s: &ServiceInstance) -> Value {
    let mut v = json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": n.tagged_addresses,
        "NodeMeta": n.meta,
        "ServiceID": s.id,
        "ServiceName": s.name,
        "ServiceTags": s.tags,
        "ServiceAddress": s.address,
        "ServiceWeights": weights(s),
        "ServiceMeta": s.meta,
        "ServicePort": s.port,
        "ServiceSocketPath": "",
        "ServiceEnableTagOverride": s.enable_tag_override,
        "ServiceConnect": {},
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    });
    extra_fields(&mut v, &s.extra, "Service");
    v
}

/// Consul's AgentService shape as catalog and health endpoints return it.
pub fn agent_service(s: &ServiceInstance, datacenter: &str) -> Value {
    let mut v = json!({
        "ID": s.id,
        "Service": s.name,
        "Tags": s.tags,
        "Address": s.address,
        "Meta": s.meta,
        "Port": s.port,
        "Weights": weights(s),
        "EnableTagOverride": s.enable_tag_override,
        "Connect": {},
        "Datacenter": datacenter,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    });
    extra_fields(&mut v, &s.extra, "");
    v
}

/// `/v1/agent/services` and `/v1/agent/service/<id>` entries: the local definition,
/// with Consul's `omitempty` fields left out when empty.
pub fn local_service(d: &ServiceDefinition, datacenter: &str) -> Value {
    let x = &d.extra;
    let mut v = json!({
        "ID": d.id,
        "Service": d.name,
        "Tags": d.tags,
        "Meta": d.meta,
        "Port": d.port,
        "Address": d.address,
        "Weights": {"Passing": d.weights.passing, "Warning": d.weights.warning},
        "EnableTagOverride": d.enable_tag_override,
        "Datacenter": datacenter,
    });
    extra_fields(&mut v, x, "");
    v
}

pub fn check(c: &HealthCheck, service_name: &str, service_tags: &[String]) -> Value {
    let spec = &c.spec;
    json!({
        "Node": c.node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status.as_str(),
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": service_name,
        "ServiceTags": service_tags,
        "Type": spec.check_type,
        "Interval": if spec.interval_ns == 0 { String::new() } else { go_duration(spec.interval_ns) },
        "Timeout": if spec.timeout_ns == 0 { String::new() } else { go_duration(spec.timeout_ns) },
        "ExposedPort": 0,
        "Definition": {
            "Interval": go_duration(spec.interval_ns),
            "Timeout": go_duration(spec.timeout_ns),
            "DeregisterCriticalServiceAfter": go_duration(spec.deregister_critical_service_after_ns),
            "HTTP": spec.http,
            "Header": null,
            "Method": "",
            "Body": "",
            "TLSServerName": "",
            "TLSSkipVerify": false,
            "TCP": spec.tcp,
        },
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

pub fn check_view(c: &CheckView) -> Value {
    check(&c.check, &c.service_name, &c.service_tags)
}

pub fn service_entry(e: &ServiceEntry) -> Value {
    json!({
        "Node": node(&e.node),
        "Service": agent_service(&e.service, &e.node.datacenter),
        "Checks": e.checks.iter().map(check_view).collect::<Vec<_>>(),
    })
}

/// One item of each list shape with every field, for validating `?filter` selectors.
pub mod templates {
    use serde_json::Value;

    use super::*;
    use crate::state::catalog::{CheckSpec, CheckStatus};

    fn sample_check() -> HealthCheck {
        HealthCheck {
            node: String::new(),
            check_id: String::new(),
            name: String::new(),
            status: CheckStatus::Passing,
            notes: String::new(),
            output: String::new(),
            service_id: String::new(),
            spec: CheckSpec::default(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// An instance whose `omitempty` fields are present (Consul filters on `Kind` and
    /// `TaggedAddresses`; `Locality` is not filterable in Consul).
    fn sample_service() -> ServiceInstance {
        ServiceInstance {
            extra: ServiceExtra {
                kind: "typical".into(),
                tagged_addresses: [("lan".to_string(), (String::new(), 0))].into(),
                ..ServiceExtra::default()
            },
            ..ServiceInstance::default()
        }
    }

    pub fn node() -> Value {
        super::node(&Node::default())
    }

    pub fn catalog_service() -> Value {
        super::catalog_service(&Node::default(), &sample_service())
    }

    pub fn check() -> Value {
        super::check(&sample_check(), "", &[])
    }

    pub fn agent_service() -> Value {
        super::agent_service(&sample_service(), "")
    }

    pub fn service_entry() -> Value {
        super::service_entry(&ServiceEntry {
            node: Node::default(),
            service: sample_service(),
            checks: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_render_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(15_000_000_000), "15s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(100_000_000), "100ms");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;
        use crate::config::arbitrary;
        use crate::config::consul_json::parse_go_duration_ns;

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// What `go_duration` writes, Go's parser reads back: exactly below a second
            /// and at millisecond steps up to a day (where its f64 arithmetic is exact).
            #[test]
            fn go_durations_read_back(
                sub_second in 0u64..1_000_000_000,
                ms in 0u64..86_400_000,
                whole_s in 0u64..10_000_000,
            ) {
                for ns in [sub_second, ms * 1_000_000, whole_s * 1_000_000_000] {
                    let text = go_duration(ns);
                    prop_assert_eq!(parse_go_duration_ns(&text), Ok(ns as i64), "{}", text);
                }
            }
        }
    }
}
