//! `PUT /v1/txn`: Consul's transaction endpoint (spec §4), KV verbs. JSON keys are
//! matched case-insensitively, as Go's decoder does.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::put;
use axum::Router;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::error::HttpError;
use super::kv::read_body;
use super::params::Params;
use super::reply::{self, KvPairJson};
use super::HttpState;
use crate::state::txn::{KvTxnOp, KvTxnVerb};

/// Consul's `txn_max_req_len` default.
pub const MAX_TXN_BODY: usize = 512 * 1024;

pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/txn", put(txn))
}

/// A field of a JSON object, with Go's case-insensitive key matching.
use crate::json::field;

fn parse_err(msg: impl std::fmt::Display) -> HttpError {
    HttpError::BadRequest(format!("Failed to parse body: {msg}"))
}

fn u64_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<u64, HttpError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            parse_err(format!(
                "json: cannot unmarshal {v} into Go struct field .{name} of type uint64"
            ))
        }),
    }
}

fn string_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<String, HttpError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(parse_err(format!(
            "json: cannot unmarshal {v} into Go struct field .{name} of type string"
        ))),
    }
}

/// Decodes the request body into KV operations.
fn parse_ops(body: &[u8]) -> Result<Vec<KvTxnOp>, HttpError> {
    let doc: Value = serde_json::from_slice(body).map_err(parse_err)?;
    let Value::Array(items) = doc else {
        return Err(parse_err(
            "json: cannot unmarshal object into Go value of type api.TxnOps",
        ));
    };
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(op) = item else {
            return Err(parse_err("each operation must be an object"));
        };
        let Some(Value::Object(kv)) = field(&op, "KV") else {
            for other in ["Node", "Service", "Check", "Session", "Intention"] {
                if field(&op, other).is_some() {
                    return Err(HttpError::BadRequest(format!(
                        "{other} operations in transactions are not supported yet; only KV operations are"
                    )));
                }
            }
            return Err(parse_err("operation has no KV member"));
        };
        let verb_text = string_field(kv, "Verb")?;
        let verb = KvTxnVerb::parse(&verb_text)
            .ok_or_else(|| HttpError::BadRequest(format!("Unknown KV verb {verb_text:?}")))?;
        let value = match field(kv, "Value") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| parse_err(format!("illegal base64 data in Value: {e}")))?,
            Some(v) => {
                return Err(parse_err(format!(
                    "json: cannot unmarshal {v} into Go struct field .Value of type []uint8"
                )))
            }
        };
        ops.push(KvTxnOp {
            verb,
            key: string_field(kv, "Key")?,
            value,
            flags: u64_field(kv, "Flags")?,
            index: u64_field(kv, "Index")?,
            session: string_field(kv, "Session")?,
        });
    }
    Ok(ops)
}

#[derive(Serialize)]
struct KvResult<'a> {
    #[serde(rename = "KV")]
    kv: KvPairJson<'a>,
}

#[derive(Serialize)]
struct TxnErrorJson<'a> {
    #[serde(rename = "OpIndex")]
    op_index: usize,
    #[serde(rename = "What")]
    what: &'a str,
}

#[derive(Serialize)]
struct TxnResponseJson<'a> {
    #[serde(rename = "Results")]
    results: Option<Vec<KvResult<'a>>>,
    #[serde(rename = "Errors")]
    errors: Option<Vec<TxnErrorJson<'a>>>,
}

async fn txn(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let consistency = params.consistency()?;
    let body = read_body(&headers, body, MAX_TXN_BODY, |n, max| {
        HttpError::TooLarge(format!(
            "Request body({n} bytes) too large, max size: {max} bytes. See https://www.consul.io/docs/agent/config/config-files#txn_max_req_len."
        ))
    })
    .await?;
    let ops = parse_ops(&body)?;
    let reply = state.service.kv_txn(ops, consistency).await?;
    let outcome = &reply.outcome;
    let (status, json) = if outcome.errors.is_empty() {
        (
            StatusCode::OK,
            TxnResponseJson {
                results: Some(
                    outcome
                        .results
                        .iter()
                        .map(|e| KvResult { kv: e.into() })
                        .collect(),
                ),
                errors: None,
            },
        )
    } else {
        (
            StatusCode::CONFLICT,
            TxnResponseJson {
                results: None,
                errors: Some(
                    outcome
                        .errors
                        .iter()
                        .map(|e| TxnErrorJson {
                            op_index: e.op_index,
                            what: &e.what,
                        })
                        .collect(),
                ),
            },
        )
    };
    let mut resp = reply::json(&state, &params, status, &json);
    if reply.read_only {
        reply::leader_headers(&mut resp, &reply.meta);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_consul_ops_case_insensitively() {
        let body = br#"[{"KV":{"Verb":"cas","Key":"a","Value":"YmFy","Flags":7,"Index":42}},
                        {"kv":{"verb":"get-tree","key":"p/"}}]"#;
        let ops = parse_ops(body).unwrap();
        assert_eq!(ops[0].verb, KvTxnVerb::Cas);
        assert_eq!(
            (ops[0].value.as_slice(), ops[0].flags, ops[0].index),
            (&b"bar"[..], 7, 42)
        );
        assert_eq!(
            (ops[1].verb, ops[1].key.as_str()),
            (KvTxnVerb::GetTree, "p/")
        );
    }

    #[test]
    fn rejects_bad_bodies_clearly() {
        let msg = |b: &[u8]| match parse_ops(b) {
            Err(HttpError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(b"{").starts_with("Failed to parse body:"));
        assert!(msg(br#"[{"KV":{"Verb":"frob","Key":"a"}}]"#).contains("Unknown KV verb"));
        assert!(msg(br#"[{"Node":{"Verb":"set"}}]"#).contains("not supported yet"));
        assert!(msg(br#"[{"KV":{"Verb":"set","Key":"a","Value":"***"}}]"#).contains("base64"));
        assert!(msg(br#"[{"KV":{"Verb":"set","Key":"a","Flags":-1}}]"#).contains("uint64"));
    }

    mod proptests {
        use proptest::prelude::*;
        use serde_json::json;

        use super::*;
        use crate::config::arbitrary;

        const VERBS: &[&str] = &[
            "set",
            "cas",
            "lock",
            "unlock",
            "get",
            "get-or-empty",
            "check-session",
            "get-tree",
            "check-index",
            "check-not-exists",
            "delete",
            "delete-tree",
            "delete-cas",
        ];

        fn op() -> impl Strategy<Value = KvTxnOp> {
            (
                prop::sample::select(VERBS),
                any::<String>(),
                prop::collection::vec(any::<u8>(), 0..64),
                any::<u64>(),
                any::<u64>(),
                any::<String>(),
            )
                .prop_map(|(verb, key, value, flags, index, session)| KvTxnOp {
                    verb: KvTxnVerb::parse(verb).expect("a listed verb"),
                    key,
                    value,
                    flags,
                    index,
                    session,
                })
        }

        /// The body a Consul client sends for `ops` (`Verb` spelled as listed).
        fn body(ops: &[KvTxnOp], verbs: &[&str]) -> Vec<u8> {
            let items: Vec<Value> = ops
                .iter()
                .zip(verbs)
                .map(|(op, verb)| {
                    json!({"KV": {
                        "Verb": verb,
                        "Key": op.key,
                        "Value": base64::engine::general_purpose::STANDARD.encode(&op.value),
                        "Flags": op.flags,
                        "Index": op.index,
                        "Session": op.session,
                    }})
                })
                .collect();
            serde_json::to_vec(&items).unwrap()
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            #[test]
            fn consul_bodies_round_trip(
                ops in prop::collection::vec((op(), prop::sample::select(VERBS)), 0..8),
            ) {
                // The verb text decides the verb; re-derive the op's from it.
                let ops: Vec<KvTxnOp> = ops
                    .into_iter()
                    .map(|(op, verb)| KvTxnOp { verb: KvTxnVerb::parse(verb).unwrap(), ..op })
                    .collect();
                let verbs: Vec<&str> = ops
                    .iter()
                    .map(|op| VERBS.iter().find(|v| KvTxnVerb::parse(v) == Some(op.verb)).unwrap())
                    .copied()
                    .collect();
                prop_assert_eq!(parse_ops(&body(&ops, &verbs)).unwrap(), ops);
            }

            #[test]
            fn any_bytes_decode_or_are_a_bad_request(bytes in arbitrary::hostile_bytes()) {
                if let Err(e) = parse_ops(&bytes) {
                    prop_assert!(matches!(e, HttpError::BadRequest(_)), "{e:?}");
                }
            }

            #[test]
            fn any_json_decodes_or_is_a_bad_request(
                ops in prop::collection::vec(
                    arbitrary::object(&["KV", "Verb", "Key", "Value", "Flags", "Index",
                                        "Session", "Node", "Service"]),
                    0..6,
                ),
            ) {
                let bytes = serde_json::to_vec(&ops).unwrap();
                match parse_ops(&bytes) {
                    Ok(decoded) => prop_assert_eq!(decoded.len(), ops.len()),
                    Err(e) => prop_assert!(matches!(e, HttpError::BadRequest(_)), "{e:?}"),
                }
            }
        }
    }
}
