//! The agent's metrics (Consul's `telemetry`), for `/v1/agent/metrics`: Consul's JSON
//! shape, or `?format=prometheus` in the OpenMetrics text format, which Prometheus scrapes
//! (the `prometheus-client` crate encodes it).
//!
//! Two kinds of figures. Counters this module owns and the front ends bump: HTTP and gRPC
//! requests by route and code, and check runs by status. And, on a server, the service
//! layer's own running totals, read at scrape time: writes, raft batches, log entries,
//! WAL fsyncs, the write path's stage timings (commit, append, fsync, apply…), watch
//! streams and waiting blocking queries. Nothing is sampled twice.
//!
//! Unlike Consul's in-memory sink, which reports the last 10-second interval, the JSON
//! reports totals since the agent started (rates are the caller's to take, as with
//! Prometheus).

use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::service::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route (`/v1/kv/{*key}`), never the raw path, so the label set stays
    /// bounded whatever clients send.
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct GrpcLabels {
    /// `/rostra.v1.KV/Put`; calls to methods that do not exist count as `other`.
    pub method: String,
    /// The gRPC status code number, as the response headers carry it (`0` for a call
    /// that succeeded, or for a stream that started).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CheckLabels {
    pub status: String,
}

/// What a label set must be to count by it and list it.
trait Labels:
    EncodeLabelSet + Clone + Eq + std::hash::Hash + Ord + std::fmt::Debug + Send + Sync + 'static
{
}

impl<T> Labels for T where
    T: EncodeLabelSet
        + Clone
        + Eq
        + std::hash::Hash
        + Ord
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A counter per label set, and the label sets seen (a `Family` cannot be listed, and
/// the JSON lists them).
#[derive(Debug)]
struct Counted<L: Labels> {
    family: Family<L, Counter>,
    seen: std::sync::Mutex<std::collections::BTreeSet<L>>,
}

impl<L: Labels> Default for Counted<L> {
    fn default() -> Self {
        Counted {
            family: Family::default(),
            seen: Default::default(),
        }
    }
}

impl<L: Labels> Counted<L> {
    fn inc(&self, labels: L) {
        self.family.get_or_create(&labels).inc();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(&labels) {
            seen.insert(labels);
        }
    }

    /// Every label set with its count, in label order.
    fn snapshot(&self) -> Vec<(L, u64)> {
        let seen: Vec<L> = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        seen.into_iter()
            .map(|l| {
                let n = self.family.get_or_create(&l).get();
                (l, n)
            })
            .collect()
    }
}

/// One agent's counters. Shared by its front ends and its check runners.
#[derive(Debug, Default)]
pub struct Telemetry {
    http: Counted<HttpLabels>,
    grpc: Counted<GrpcLabels>,
    checks: Counted<CheckLabels>,
    started: Option<Instant>,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry {
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    pub fn http_request(&self, method: &str, route: &str, code: u16) {
        self.http.inc(HttpLabels {
            method: method.into(),
            route: route.into(),
            code: code.to_string(),
        });
    }

    pub fn grpc_request(&self, method: &str, code: &str) {
        self.grpc.inc(GrpcLabels {
            method: method.into(),
            code: code.into(),
        });
    }

    pub fn check_run(&self, status: &str) {
        self.checks.inc(CheckLabels {
            status: status.into(),
        });
    }

    fn uptime(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// The OpenMetrics text of every figure; `server` carries the service layer's.
    pub fn prometheus(&self, server: Option<&Metrics>) -> String {
        let mut registry = Registry::with_prefix("consul");
        registry.register(
            "http_requests",
            "HTTP API requests by route and status code",
            self.http.family.clone(),
        );
        registry.register(
            "grpc_requests",
            "gRPC API calls by method and status code",
            self.grpc.family.clone(),
        );
        registry.register(
            "agent_check_runs",
            "Health check runs by resulting status",
            self.checks.family.clone(),
        );
        if let Some(m) = server {
            registry.register_collector(Box::new(ServerFigures(m.clone())));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("encoding into a String cannot fail");
        out
    }

    /// Consul's `/v1/agent/metrics` JSON.
    pub fn json(&self, server: Option<&Metrics>) -> Value {
        let secs = self.uptime().as_secs_f64().max(1e-9);
        let counter = |name: &str, count: u64, labels: Value| {
            json!({
                "Name": name, "Count": count, "Rate": count as f64 / secs, "Sum": count as f64,
                "Min": 1, "Max": 1, "Mean": 1, "Stddev": 0, "Labels": labels,
            })
        };
        let mut counters = Vec::new();
        for (labels, c) in self.http.snapshot() {
            counters.push(counter(
                "consul.http.requests",
                c,
                json!({"method": labels.method, "route": labels.route, "code": labels.code}),
            ));
        }
        for (labels, c) in self.grpc.snapshot() {
            counters.push(counter(
                "consul.grpc.requests",
                c,
                json!({"method": labels.method, "code": labels.code}),
            ));
        }
        for (labels, c) in self.checks.snapshot() {
            counters.push(counter(
                "consul.agent.check.runs",
                c,
                json!({"status": labels.status}),
            ));
        }
        let mut gauges = vec![
            json!({"Name": "consul.runtime.uptime_seconds", "Value": self.uptime().as_secs_f64(), "Labels": {}}),
        ];
        let mut samples = Vec::new();
        if let Some(m) = server {
            for (name, value) in server_counters(m) {
                counters.push(counter(
                    &format!("consul.{}", name.replace('_', ".")),
                    value,
                    json!({}),
                ));
            }
            for (name, value) in server_gauges(m) {
                gauges.push(json!({"Name": format!("consul.{}", name.replace('_', ".")), "Value": value, "Labels": {}}));
            }
            for ((stage, count, total_ns), (_, min_ns, max_ns)) in
                m.stages.iter().zip(&m.stage_extremes)
            {
                let ms = |ns: u64| ns as f64 / 1e6;
                let mean = if *count == 0 {
                    0.0
                } else {
                    ms(*total_ns) / *count as f64
                };
                samples.push(json!({
                    "Name": format!("consul.raft.stage.{stage}"), "Count": count,
                    "Rate": *count as f64 / secs, "Sum": ms(*total_ns), "Min": ms(*min_ns),
                    "Max": ms(*max_ns), "Mean": mean, "Labels": {"unit": "ms"},
                }));
            }
        }
        json!({
            "Timestamp": go_timestamp(std::time::SystemTime::now()),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        })
    }
}

/// The service layer's running totals: counters.
fn server_counters(m: &Metrics) -> [(&'static str, u64); 5] {
    [
        ("raft_writes", m.writes),
        ("raft_batches", m.proposals),
        ("raft_log_entries", m.log_entries),
        ("raft_wal_fsyncs", m.wal_fsyncs),
        ("blocking_query_wakeups", m.query_wakeups),
    ]
}

/// … and gauges.
fn server_gauges(m: &Metrics) -> [(&'static str, f64); 3] {
    let per_batch = if m.proposals == 0 {
        0.0
    } else {
        m.writes as f64 / m.proposals as f64
    };
    [
        ("raft_writes_per_batch", per_batch),
        ("watch_streams", m.watchers as f64),
        ("blocking_queries_waiting", m.blocking_queries as f64),
    ]
}

/// The server's figures, encoded at scrape time.
#[derive(Debug)]
struct ServerFigures(Metrics);

impl prometheus_client::collector::Collector for ServerFigures {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        for (name, value) in server_counters(&self.0) {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, name, None, c.metric_type())?)?;
        }
        for (name, value) in server_gauges(&self.0) {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, name, None, g.metric_type())?)?;
        }
        // Each write-path stage as total seconds and events: rate(sum) / rate(count) is
        // its mean latency (raft commit, append, WAL fsync, apply, publish…).
        for (stage, count, total_ns) in &self.0.stages {
            let sum = ConstCounter::new(*total_ns as f64 / 1e9);
            let name = format!("raft_stage_{stage}_seconds");
            let help = format!("time spent in the write path's {stage} stage");
            sum.encode(encoder.encode_descriptor(&name, &help, None, sum.metric_type())?)?;
            let events = ConstCounter::new(*count);
            let name = format!("raft_stage_{stage}_events");
            events.encode(encoder.encode_descriptor(
                &name,
                &help,
                None,
                events.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Go's `time.Time.String()` in UTC, which Consul's JSON `Timestamp` is:
/// `2017-08-08 02:55:10 +0000 UTC`.
fn go_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::logs::civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_timestamps() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_502_160_910);
        assert_eq!(go_timestamp(t), "2017-08-08 02:55:10 +0000 UTC");
    }

    #[test]
    fn counters_appear_in_both_formats() {
        let t = Telemetry::new();
        t.http_request("GET", "/v1/kv/{*key}", 200);
        t.http_request("GET", "/v1/kv/{*key}", 200);
        t.check_run("critical");
        let m = Metrics {
            writes: 10,
            proposals: 4,
            stages: vec![("commit".into(), 2, 3_000_000)],
            stage_extremes: vec![("commit".into(), 1_000_000, 2_000_000)],
            ..Default::default()
        };
        let text = t.prometheus(Some(&m));
        assert!(
            text.contains(
                r#"consul_http_requests_total{method="GET",route="/v1/kv/{*key}",code="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"consul_agent_check_runs_total{status="critical"} 1"#),
            "{text}"
        );
        assert!(text.contains("consul_raft_writes_per_batch 2.5"), "{text}");
        assert!(
            text.contains("consul_raft_stage_commit_events_total 2"),
            "{text}"
        );
        let j = t.json(Some(&m));
        let http = j["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == "consul.http.requests")
            .unwrap();
        assert_eq!(http["Count"], 2);
        assert_eq!(http["Labels"]["route"], "/v1/kv/{*key}");
        let commit = j["Samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == "consul.raft.stage.commit")
            .unwrap();
        assert_eq!(
            (commit["Count"].as_u64(), commit["Mean"].as_f64()),
            (Some(2), Some(1.5))
        );
        assert_eq!(
            (commit["Min"].as_f64(), commit["Max"].as_f64()),
            (Some(1.0), Some(2.0))
        );
        let gauges = j["Gauges"].as_array().unwrap();
        assert!(gauges
            .iter()
            .any(|g| g["Name"] == "consul.raft.writes.per.batch" && g["Value"] == 2.5));
        // An agent that is not a server has no raft figures.
        assert!(!t.prometheus(None).contains("raft"));
    }
}
