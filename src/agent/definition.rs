//! Service and check definitions as Consul accepts them, in agent config files
//! (`service`/`services`, `check`/`checks`) and in `/v1/agent/service/register` and
//! `/v1/agent/check/register` bodies. One decoder serves both (see `config::consul_json`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::consul_json::{DecodeError, Obj};

pub use crate::state::catalog::{CheckStatus, ServiceExtra, Weights};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDefinition {
    /// Unique on the agent; defaults to `name`.
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Empty: the node's address.
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub checks: Vec<CheckDefinition>,
    /// Consul's mesh and topology fields, stored and echoed by the agent endpoints (Rostra
    /// has no service mesh; `serde(default)` keeps earlier saved registrations readable).
    #[serde(default)]
    pub extra: ServiceExtra,
}

/// Decodes Consul's `TaggedAddresses`, `Kind`, `Proxy` and `Locality` of a service
/// definition or a catalog registration's `Service`: shape only, what may be registered
/// is `ServiceExtra::invalid`'s to say.
pub fn decode_service_extra(obj: &mut Obj<'_>, strict: bool) -> Result<ServiceExtra, DecodeError> {
    let mut tagged_addresses = BTreeMap::new();
    if let Some(mut t) = obj.object(&["TaggedAddresses"])? {
        for name in t.keys() {
            let Some(mut a) = t.object(&[&name])? else {
                continue;
            };
            let address = a.string(&["Address"])?.unwrap_or_default();
            let port = match a.u64(&["Port"])? {
                None => 0,
                Some(p) if p <= u16::MAX as u64 => p as u16,
                Some(p) => return Err(a.err("Port", format!("port {p} is out of range"))),
            };
            a.finish(strict)?;
            tagged_addresses.insert(name, (address, port));
        }
    }
    let kind = obj.string(&["Kind"])?.unwrap_or_default();
    let proxy = match obj.get(&["Proxy"]) {
        None => String::new(),
        Some((_, v @ Value::Object(_))) => v.to_string(),
        Some((k, _)) => return Err(obj.err(k, "expected an object")),
    };
    let locality = match obj.object(&["Locality"])? {
        None => None,
        Some(mut l) => {
            let region = l.string(&["Region"])?.unwrap_or_default();
            let zone = l.string(&["Zone"])?.unwrap_or_default();
            l.finish(strict)?;
            Some((region, zone))
        }
    };
    Ok(ServiceExtra {
        tagged_addresses,
        kind,
        proxy,
        locality,
    })
}

/// What a check runs; exactly one kind per check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// Argument vector run without a shell; exit 0 passing, 1 warning, else critical.
    Script { args: Vec<String> },
    /// 2xx passing, 429 warning, anything else critical.
    Http {
        url: String,
        method: String,
        header: BTreeMap<String, Vec<String>>,
        body: String,
        tls_skip_verify: bool,
    },
    /// Passing when a TCP connection succeeds.
    Tcp { addr: String },
    /// Critical unless updated through the agent API within `ttl`.
    Ttl { ttl: Duration },
    /// Maintenance mode (`_node_maintenance`, `_service_maintenance:<id>`): critical for as
    /// long as it exists; nothing runs it and nothing updates it.
    Maintenance,
}

impl CheckKind {
    /// Consul's `Type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Script { .. } => "script",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::Maintenance => "maintenance",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDefinition {
    pub id: String,
    pub name: String,
    pub notes: String,
    /// The service this check belongs to; empty for a node check.
    pub service_id: String,
    /// Initial status; Consul starts checks critical unless told otherwise.
    pub status: CheckStatus,
    pub kind: CheckKind,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub deregister_critical_service_after: Option<Duration>,
    pub output_max_size: Option<usize>,
}

/// Consul's default cap on kept check output.
pub const DEFAULT_OUTPUT_MAX_SIZE: usize = 4096;
/// Intervals below this are raised to it, as Consul does.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl CheckDefinition {
    /// How often the check runs (TTL checks are not run).
    pub fn interval(&self) -> Duration {
        self.interval
            .unwrap_or(Duration::from_secs(10))
            .max(MIN_INTERVAL)
    }

    /// Per-run timeout: Consul's defaults are 30s for scripts, 10s for network checks.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(match self.kind {
            CheckKind::Script { .. } => Duration::from_secs(30),
            _ => Duration::from_secs(10),
        })
    }

    /// Decodes a check. `in_service` is the owning service's (id, position among its
    /// checks, how many it has) when embedded, for Consul's default IDs and names.
    pub fn decode(
        mut obj: Obj<'_>,
        strict: bool,
        in_service: Option<(&str, &str, usize, usize)>,
    ) -> Result<Self, DecodeError> {
        let id = obj.string(&["CheckID", "ID"])?.unwrap_or_default();
        let name = obj.string(&["Name"])?.unwrap_or_default();
        let notes = obj.string(&["Notes"])?.unwrap_or_default();
        let service_id = obj.string(&["ServiceID"])?.unwrap_or_default();
        let status = match obj.string(&["Status"])? {
            None => CheckStatus::Critical,
            Some(s) if s.is_empty() => CheckStatus::Critical,
            Some(s) => {
                CheckStatus::parse(&s).ok_or_else(|| obj.err("Status", "Bad check status"))?
            }
        };
        let args = obj.string_list(&["Args", "ScriptArgs"])?;
        let script = obj.string(&["Script"])?;
        let http = obj.string(&["HTTP"])?;
        let tcp = obj.string(&["TCP"])?;
        let ttl = obj.duration(&["TTL"])?;
        let method = obj.string(&["Method"])?.unwrap_or_else(|| "GET".into());
        let header = match obj.get(&["Header"]) {
            None => BTreeMap::new(),
            Some((k, v)) => {
                let map = v
                    .as_object()
                    .ok_or_else(|| obj.err(k, "expected an object of string lists"))?;
                let mut out = BTreeMap::new();
                for (h, vals) in map {
                    let list = vals
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|x| x.as_str().map(String::from))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| {
                            obj.err(&format!("{k}.{h}"), "expected a list of strings")
                        })?;
                    out.insert(h.clone(), list);
                }
                out
            }
        };
        let body = obj.string(&["Body"])?.unwrap_or_default();
        let tls_skip_verify = obj.bool(&["TLSSkipVerify"])?.unwrap_or(false);
        let interval = obj.duration(&["Interval"])?;
        let timeout = obj.duration(&["Timeout"])?;
        let deregister = obj.duration(&["DeregisterCriticalServiceAfter"])?;
        let output_max_size = obj.u64(&["OutputMaxSize"])?.map(|n| n as usize);
        // Accepted and ignored: fields of check types and features Rostra does not have.
        obj.ignore(&[
            "TLSServerName",
            "DisableRedirects",
            "SuccessBeforePassing",
            "FailuresBeforeWarning",
            "FailuresBeforeCritical",
            "Namespace",
            "Partition",
            "Type",
            "Definition",
            "Node",
            "ServiceName",
            "ServiceTags",
            "Output",
            "CreateIndex",
            "ModifyIndex",
        ]);
        obj.finish(strict)?;

        let kinds = [
            args.is_some() || script.is_some(),
            http.is_some(),
            tcp.is_some(),
            ttl.is_some(),
        ];
        let kind = match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(DecodeError {
                    path: String::new(),
                    message: "Invalid check: one of Args, HTTP, TCP or TTL is required".into(),
                })
            }
            1 => {
                if let Some(args) = args {
                    if args.is_empty() {
                        return Err(DecodeError {
                            path: String::new(),
                            message: "Invalid check: Args must not be empty".into(),
                        });
                    }
                    CheckKind::Script { args }
                } else if let Some(script) = script {
                    // Consul's legacy `script` string runs through a shell.
                    CheckKind::Script {
                        args: vec!["/bin/sh".into(), "-c".into(), script],
                    }
                } else if let Some(url) = http {
                    CheckKind::Http {
                        url,
                        method,
                        header,
                        body,
                        tls_skip_verify,
                    }
                } else if let Some(addr) = tcp {
                    CheckKind::Tcp { addr }
                } else {
                    CheckKind::Ttl {
                        ttl: ttl.unwrap_or_default(),
                    }
                }
            }
            _ => {
                return Err(DecodeError {
                    path: String::new(),
                    message: "Invalid check: only one of Args, HTTP, TCP or TTL may be given"
                        .into(),
                })
            }
        };
        if !matches!(kind, CheckKind::Ttl { .. }) && interval.is_none() {
            return Err(DecodeError {
                path: String::new(),
                message: "Invalid check: Interval is required for script, HTTP and TCP checks"
                    .into(),
            });
        }
        let (id, name, service_id) = match in_service {
            Some((sid, sname, pos, count)) => {
                let id = if !id.is_empty() {
                    id
                } else if count > 1 {
                    format!("service:{sid}:{pos}")
                } else {
                    format!("service:{sid}")
                };
                let name = if name.is_empty() {
                    format!("Service '{sname}' check")
                } else {
                    name
                };
                (id, name, sid.to_string())
            }
            None => {
                if name.is_empty() {
                    return Err(DecodeError {
                        path: String::new(),
                        message: "Missing check name".into(),
                    });
                }
                let id = if id.is_empty() { name.clone() } else { id };
                (id, name, service_id)
            }
        };
        Ok(CheckDefinition {
            id,
            name,
            notes,
            service_id,
            status,
            kind,
            interval,
            timeout,
            deregister_critical_service_after: deregister,
            output_max_size,
        })
    }
}

impl ServiceDefinition {
    pub fn decode(mut obj: Obj<'_>, strict: bool) -> Result<Self, DecodeError> {
        let name = obj.string(&["Name"])?.unwrap_or_default();
        if name.is_empty() {
            return Err(obj.err("Name", "Missing service name"));
        }
        let id = obj
            .string(&["ID"])?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| name.clone());
        let tags = obj.string_list(&["Tags"])?.unwrap_or_default();
        let address = obj.string(&["Address"])?.unwrap_or_default();
        let port = match obj.u64(&["Port"])? {
            None => 0,
            Some(p) if p <= u16::MAX as u64 => p as u16,
            Some(p) => return Err(obj.err("Port", format!("port {p} is out of range"))),
        };
        let meta = obj.string_map(&["Meta"])?.unwrap_or_default();
        let enable_tag_override = obj.bool(&["EnableTagOverride"])?.unwrap_or(false);
        let weights = match obj.object(&["Weights"])? {
            None => Weights::default(),
            Some(mut w) => {
                let passing = w.u64(&["Passing"])?.unwrap_or(1) as u32;
                let warning = w.u64(&["Warning"])?.unwrap_or(1) as u32;
                w.finish(strict)?;
                Weights { passing, warning }
            }
        };
        let mut check_objs = obj.objects(&["Check"])?;
        check_objs.extend(obj.objects(&["Checks"])?);
        let extra = decode_service_extra(&mut obj, strict)?;
        if let Some(why) = extra.invalid() {
            return Err(obj.err("Kind", why));
        }
        obj.ignore(&["Connect", "Namespace", "Partition", "SocketPath", "Token"]);
        obj.finish(strict)?;
        let count = check_objs.len();
        let checks = check_objs
            .into_iter()
            .enumerate()
            .map(|(i, c)| CheckDefinition::decode(c, strict, Some((&id, &name, i + 1, count))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServiceDefinition {
            id,
            name,
            tags,
            address,
            port,
            meta,
            weights,
            enable_tag_override,
            checks,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(v: serde_json::Value) -> Result<ServiceDefinition, DecodeError> {
        ServiceDefinition::decode(Obj::new(&v, "service").unwrap(), true)
    }

    #[test]
    fn walkthrough_service_and_embedded_checks() {
        let s = service(serde_json::json!({
            "name": "example", "tags": ["special"], "address": "127.0.0.1", "port": 3456,
            "checks": [{"args": ["./check_green.sh"], "interval": "15s"}, {"tcp": "127.0.0.1:3456", "interval": "10s"}]
        }))
        .unwrap();
        assert_eq!((s.id.as_str(), s.port, s.tags.len()), ("example", 3456, 1));
        assert_eq!(s.checks[0].id, "service:example:1");
        assert_eq!(s.checks[1].id, "service:example:2");
        assert_eq!(s.checks[0].name, "Service 'example' check");
        assert_eq!(s.checks[0].status, CheckStatus::Critical);
        assert_eq!(s.checks[0].interval(), Duration::from_secs(15));
        assert!(
            matches!(&s.checks[0].kind, CheckKind::Script { args } if args == &["./check_green.sh"])
        );
    }

    #[test]
    fn api_body_in_pascal_case_with_one_check() {
        let s = ServiceDefinition::decode(
            Obj::new(&serde_json::json!({"ID": "example2", "Name": "example2", "Tags": ["specific", "v1"],
                "Address": "127.0.0.1", "Port": 8000, "Check": {"TTL": "30s"}, "Unknown": 1}), "").unwrap(),
            false,
        )
        .unwrap();
        assert_eq!(s.checks[0].id, "service:example2");
        assert!(
            matches!(s.checks[0].kind, CheckKind::Ttl { ttl } if ttl == Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_definitions_are_reported() {
        assert!(service(serde_json::json!({"port": 1}))
            .unwrap_err()
            .message
            .contains("Missing service name"));
        let e =
            service(serde_json::json!({"name": "x", "checks": [{"args": ["a"], "intervl": "1s"}]}))
                .unwrap_err();
        assert_eq!(e.path, "service.checks[0].intervl");
        let e = service(serde_json::json!({"name": "x", "check": {"args": ["a"], "http": "http://x", "interval": "1s"}})).unwrap_err();
        assert!(e.message.contains("only one of"));
        let e = service(serde_json::json!({"name": "x", "check": {"args": ["a"]}})).unwrap_err();
        assert!(e.message.contains("Interval is required"));
        let e =
            service(serde_json::json!({"name": "x", "check": {"ttl": "1s", "status": "bogus"}}))
                .unwrap_err();
        assert!(e.message.contains("Bad check status"));
    }
}
