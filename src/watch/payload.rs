//! What a handler gets, and when (Consul's `api/watch/plan.go`): the JSON Consul's watch
//! hands its handlers for each type, rendered from the watched state, and the firing
//! rules. A handler runs once with the state at start, then once per change whose
//! result is not deep-equal to the last one delivered; an event watch hands over only
//! the events newer than the last delivered.
//!
//! Unlike Consul, where the event watch dedupes by the previous list's ID-derived index
//! and redelivers the whole buffer once that event rotates out, events here are
//! committed to raft with a strictly increasing Lamport time, so "newer" is simply a
//! greater `LTime`. Where deliveries stand is a [`Cursor`], small enough to persist
//! after every delivery (the agent's `watches` do, so a restart re-runs nothing).

use std::hash::Hasher;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WatchPlan;
use crate::http::catalog_json as cj;
use crate::http::event::event_json;
use crate::service::CatalogItem;
use crate::state::KvEntry;

/// Go's `api.KVPair` (what Consul's watch decodes KV answers into), in its field order.
#[derive(Debug, Serialize)]
pub struct KvPairJson<'a> {
    #[serde(rename = "Key")]
    pub key: &'a str,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "LockIndex")]
    pub lock_index: u64,
    #[serde(rename = "Flags")]
    pub flags: u64,
    /// Base64, or null for an empty value.
    #[serde(rename = "Value")]
    pub value: Option<String>,
    #[serde(rename = "Session")]
    pub session: &'a str,
}

impl<'a> From<&'a KvEntry> for KvPairJson<'a> {
    fn from(e: &'a KvEntry) -> Self {
        KvPairJson {
            key: &e.key,
            create_index: e.create_index,
            modify_index: e.modify_index,
            lock_index: e.lock_index,
            flags: e.flags,
            value: (!e.value.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
            session: &e.session,
        }
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("JSON encoding of plain data")
}

/// A KV watch's payload: the pair (or `null`) for `key`, every pair under the prefix (or
/// `null` when there is none) for `keyprefix`.
pub fn kv_payload<'a>(plan: &WatchPlan, entries: impl IntoIterator<Item = &'a KvEntry>) -> Value {
    let mut pairs = entries.into_iter().map(|e| to_value(KvPairJson::from(e)));
    match plan {
        WatchPlan::Key(_) => pairs.next().unwrap_or(Value::Null),
        _ => {
            let pairs: Vec<Value> = pairs.collect();
            if pairs.is_empty() {
                Value::Null
            } else {
                Value::Array(pairs)
            }
        }
    }
}

/// A catalog, health or event watch's payload from its items (in key order, which for
/// events is Lamport time). Items of a kind the plan does not watch cannot occur (the
/// service layer's view decides the kind) and are left out.
pub fn catalog_payload<'a>(
    plan: &WatchPlan,
    items: impl IntoIterator<Item = &'a CatalogItem>,
) -> Value {
    let items = items.into_iter();
    match plan {
        // Consul's object, sorted by name as its JSON is.
        WatchPlan::Services => Value::Object(
            items
                .filter_map(|i| match i {
                    CatalogItem::Service { name, tags } => Some((
                        name.clone(),
                        Value::from(Vec::from_iter(tags.iter().cloned())),
                    )),
                    _ => None,
                })
                .collect(),
        ),
        _ => Value::Array(
            items
                .filter_map(|i| match (plan, i) {
                    (WatchPlan::Nodes, CatalogItem::Node(n)) => Some(cj::node(n)),
                    (WatchPlan::Service { .. }, CatalogItem::Health(e)) => {
                        Some(cj::service_entry(e))
                    }
                    (
                        WatchPlan::ServiceChecks(_) | WatchPlan::StateChecks(_),
                        CatalogItem::Check(c),
                    ) => Some(cj::check_view(c)),
                    (WatchPlan::Event(_), CatalogItem::Event(e)) => Some(event_json(e)),
                    _ => None,
                })
                .collect(),
        ),
    }
}

/// Where a watch's deliveries stand: the index and digest of the payload its handler
/// last got, and for an event watch the Lamport time of the newest event in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub index: u64,
    pub digest: u64,
    pub ltime: u64,
}

/// A stable digest of a payload (FNV-1a, fixed across builds, so it can be persisted or
/// handed to clients: `/v1/agent/service/<id>`'s `ContentHash`).
pub fn digest(payload: &Value) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(payload.to_string().as_bytes());
    h.finish()
}

/// Consul's firing rules for one watch.
#[derive(Debug, Clone)]
pub struct Firing {
    event: bool,
    cursor: Option<Cursor>,
}

impl Firing {
    /// A watch whose handler has seen nothing yet (`None`), or that resumes after
    /// `cursor`.
    pub fn new(plan: &WatchPlan, cursor: Option<Cursor>) -> Self {
        Firing {
            event: plan.is_event(),
            cursor,
        }
    }

    /// What the handler last got.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// The payload to hand over for `view`, the watch's whole answer at `index`, or
    /// `None` when the handler already has it. A view older than the last delivery (a
    /// restarted agent still catching up) is never handed over.
    pub fn offer(&mut self, index: u64, view: Value) -> Option<Value> {
        if self.cursor.is_some_and(|c| index < c.index) {
            return None;
        }
        let (payload, ltime) = if self.event {
            let after = self.cursor.map_or(0, |c| c.ltime);
            let ltime_of = |e: &Value| e["LTime"].as_u64().unwrap_or(0);
            let fresh: Vec<Value> = match view {
                Value::Array(events) => {
                    events.into_iter().filter(|e| ltime_of(e) > after).collect()
                }
                _ => Vec::new(),
            };
            // The first run hands over what there is, even nothing; later ones only news
            // (a change that added none, such as retention trimming, is not one).
            if fresh.is_empty() && self.cursor.is_some() {
                return None;
            }
            let newest = fresh.iter().map(ltime_of).max().unwrap_or(after);
            (Value::Array(fresh), newest)
        } else {
            (view, 0)
        };
        let digest = digest(&payload);
        if !self.event && self.cursor.is_some_and(|c| c.digest == digest) {
            return None;
        }
        self.cursor = Some(Cursor {
            index,
            digest,
            ltime,
        });
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kv_payloads_are_consuls() {
        let entry = KvEntry {
            key: "k".into(),
            value: b"foo".to_vec(),
            flags: 0,
            create_index: 5,
            modify_index: 6,
            lock_index: 0,
            session: String::new(),
        };
        let key = WatchPlan::Key("k".into());
        let prefix = WatchPlan::KeyPrefix("".into());
        assert_eq!(kv_payload(&key, []), Value::Null);
        assert_eq!(kv_payload(&prefix, []), Value::Null);
        assert_eq!(
            kv_payload(&key, [&entry]).to_string(),
            r#"{"Key":"k","CreateIndex":5,"ModifyIndex":6,"LockIndex":0,"Flags":0,"Value":"Zm9v","Session":""}"#
        );
        assert!(kv_payload(&prefix, [&entry])
            .to_string()
            .starts_with(r#"[{"Key":"k""#));
    }

    #[test]
    fn deep_equal_results_do_not_fire_and_old_views_are_skipped() {
        let plan = WatchPlan::Nodes;
        let mut f = Firing::new(&plan, None);
        assert_eq!(
            f.offer(5, json!([])),
            Some(json!([])),
            "the first run fires"
        );
        assert_eq!(f.offer(6, json!([])), None, "deep-equal");
        assert_eq!(f.offer(7, json!([1])), Some(json!([1])));
        let saved = f.cursor().unwrap();
        assert_eq!(saved.index, 7);
        // A restart resumes from the saved cursor: the same result does not fire, an
        // older view is skipped, a different newer one fires.
        let mut again = Firing::new(&plan, Some(saved));
        assert_eq!(again.offer(9, json!([1])), None);
        assert_eq!(again.offer(3, json!([2])), None);
        assert_eq!(again.offer(10, json!([2])), Some(json!([2])));
    }

    #[test]
    fn event_watches_deliver_only_newer_events() {
        let plan = WatchPlan::Event(String::new());
        let ev = |l: u64| json!({"Name": "e", "LTime": l});
        let mut f = Firing::new(&plan, None);
        assert_eq!(
            f.offer(1, json!([])),
            Some(json!([])),
            "the first run fires"
        );
        assert_eq!(
            f.offer(2, json!([ev(1), ev(2)])),
            Some(json!([ev(1), ev(2)]))
        );
        assert_eq!(
            f.offer(3, json!([ev(1), ev(2), ev(3)])),
            Some(json!([ev(3)]))
        );
        // Retention trimmed the oldest: nothing new.
        assert_eq!(f.offer(4, json!([ev(2), ev(3)])), None);
        let mut resumed = Firing::new(&plan, f.cursor());
        assert_eq!(resumed.offer(5, json!([ev(2), ev(3)])), None);
        assert_eq!(
            resumed.offer(6, json!([ev(3), ev(4), ev(5)])),
            Some(json!([ev(4), ev(5)]))
        );
    }
}
