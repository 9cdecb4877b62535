//! Consul's query parameters: flag parameters count by presence (`?recurse`,
//! `?recurse=`, `?recurse=false` all mean on), blocking (`index`, `wait`), consistency
//! (`stale`, `consistent`), `dc` and the accepted-and-ignored enterprise ones.

use std::time::Duration;

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::error::HttpError;
use crate::service::query::blocking_wait;
use crate::service::{Consistency, QueryOptions};

/// The decoded query string, in order, plus the raw text (for Consul's
/// `Conflicting flags: <query>` message).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    pub raw: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state).await?;
        let raw = raw.unwrap_or_default();
        let pairs = form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        Ok(Params { pairs, raw })
    }
}

/// Go's `time.ParseDuration`; a bare number without a unit is an error, as in Go. A
/// negative duration counts as zero (a `?wait=-1s` is no wait of its own).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let ns = crate::config::consul_json::parse_go_duration_ns(text).ok()?;
    Some(Duration::from_nanos(ns.max(0) as u64))
}

impl Params {
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Every value of a repeated parameter (`?tag=a&tag=b`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A u64 parameter; `what` names it in the error.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, HttpError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                HttpError::BadRequest(format!(
                    "Invalid {name}: strconv.ParseUint: parsing {v:?}: invalid syntax"
                ))
            }),
        }
    }

    pub fn consistency(&self) -> Result<Consistency, HttpError> {
        match (self.has("stale"), self.has("consistent")) {
            (true, true) => Err(HttpError::BadRequest(
                "Cannot specify ?stale with ?consistent, conflicting semantics.".into(),
            )),
            (true, false) => Ok(Consistency::Stale),
            (false, true) => Ok(Consistency::Consistent),
            (false, false) => Ok(Consistency::Default),
        }
    }

    /// Blocking and consistency options for a read endpoint.
    pub fn query_options(&self) -> Result<QueryOptions, HttpError> {
        let consistency = self.consistency()?;
        if self.has("cached") && consistency == Consistency::Consistent {
            return Err(HttpError::BadRequest(
                "Cannot specify ?cached with ?consistent, conflicting semantics.".into(),
            ));
        }
        let min_index = match self.get("index") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| HttpError::BadRequest("Invalid index".into()))?,
        };
        let wait = match self.get("wait") {
            None | Some("") => None,
            Some(v) => Some(
                parse_go_duration(v)
                    .ok_or_else(|| HttpError::BadRequest("Invalid wait time".into()))?,
            ),
        };
        if let Some(v) = self.get("max_stale") {
            if parse_go_duration(v).is_none() {
                return Err(HttpError::BadRequest(format!(
                    "Invalid max_stale value {v:?}"
                )));
            }
        }
        Ok(QueryOptions {
            consistency,
            min_index,
            wait: blocking_wait(wait),
        })
    }

    /// `?peer=<name>` asks for what a cluster peer exported. Rostra has no peerings, so
    /// every peer is unknown and, as in Consul, its data is empty (not an error).
    pub fn names_peer(&self) -> bool {
        self.get("peer").is_some_and(|p| !p.is_empty())
    }

    /// `?dc` must be empty or ours; `?ns`/`?partition` only `default` (enterprise
    /// features are accepted and ignored, spec §0).
    pub fn check_scope(&self, datacenter: &str) -> Result<(), HttpError> {
        if let Some(dc) = self.get("dc") {
            if !dc.is_empty() && dc != datacenter {
                return Err(HttpError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No path to datacenter".into(),
                ));
            }
        }
        for name in ["ns", "partition"] {
            if let Some(v) = self.get(name) {
                if !v.is_empty() && v != "default" {
                    return Err(HttpError::BadRequest(format!(
                        "{name} {v:?} is not served: Rostra has only the default {name}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params {
            pairs: form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            raw: q.into(),
        }
    }

    #[test]
    fn flags_count_by_presence() {
        for q in [
            "recurse",
            "recurse=",
            "recurse=1",
            "recurse=false",
            "keys=True&recurse",
        ] {
            assert!(params(q).has("recurse"), "{q}");
        }
        assert!(!params("recursive").has("recurse"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("15000ms"), Some(Duration::from_secs(15)));
        for bad in ["15", "abc", "", "s", "1x", "µ", "é5s", "--1s", "1.s.s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_blocking_parameters_get_consuls_texts() {
        let msg = |q: &str| match params(q).query_options() {
            Err(HttpError::BadRequest(m)) => m,
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(msg("index=abc"), "Invalid index");
        assert_eq!(msg("index=-1"), "Invalid index");
        assert_eq!(msg("index=1&wait=10"), "Invalid wait time");
        assert_eq!(
            msg("stale&consistent"),
            "Cannot specify ?stale with ?consistent, conflicting semantics."
        );
        let ok = params("index=7&wait=2s&stale=").query_options().unwrap();
        assert_eq!((ok.min_index, ok.consistency), (7, Consistency::Stale));
        assert!(ok.wait >= Duration::from_secs(2));
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;
        use crate::config::arbitrary;

        /// A query string as a client might send it: known parameters with awkward
        /// values, percent-encoded junk (bad UTF-8 included), stray `&`, `=` and `%`.
        fn query() -> impl Strategy<Value = String> {
            let name = prop::sample::select(vec![
                "index",
                "wait",
                "stale",
                "consistent",
                "cached",
                "max_stale",
                "dc",
                "ns",
                "partition",
                "flags",
                "cas",
                "recurse",
                "filter",
            ]);
            let value = prop_oneof![
                arbitrary::awkward_string(),
                any::<u64>().prop_map(|n| n.to_string()),
                "-?[0-9]{19,40}",
                prop::collection::vec(any::<u8>(), 0..12)
                    .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
                "[%&=+;#?]{0,6}",
            ];
            prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            })
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            #[test]
            fn any_query_decodes_or_is_a_bad_request(q in query()) {
                let p = params(&q);
                let _ = p.check_scope("dc1");
                let _ = p.u64("flags");
                match p.query_options() {
                    Ok(opts) => {
                        // What was accepted is what the text says.
                        let index = p.get("index").filter(|v| !v.is_empty());
                        prop_assert_eq!(opts.min_index, index.map_or(0, |v| v.parse().unwrap()));
                        if let Some(w) = p.get("wait").filter(|v| !v.is_empty()) {
                            prop_assert!(parse_go_duration(w).is_some());
                        }
                    }
                    Err(HttpError::BadRequest(m)) => prop_assert!(!m.is_empty()),
                    Err(other) => prop_assert!(false, "{q:?}: {other:?}"),
                }
            }

            #[test]
            fn indexes_past_u64_are_refused(digits in "[1-9][0-9]{20,60}", sign in "-?") {
                let q = format!("index={sign}{digits}");
                prop_assert!(matches!(params(&q).query_options(), Err(HttpError::BadRequest(_))));
            }
        }
    }
}
