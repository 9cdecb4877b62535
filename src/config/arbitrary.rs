//! Proptest strategies shared by the property tests of every decoder that takes network
//! or file input (config files, HTTP bodies and query strings, DNS names, protobuf
//! requests): arbitrary JSON that is deep, wide, has extreme numbers and awkward strings,
//! JSON shaped like Consul's (its keys in any case and underscore spelling), and the
//! case count. Test-only; nothing here is compiled into the agent.
//!
//! The case count is [`config`]'s default unless `PROPTEST_CASES` is set, so a soak run
//! can raise it (`PROPTEST_CASES=10000 cargo test --lib proptests`) while `cargo test`
//! stays quick.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Cases per property when `PROPTEST_CASES` is not set: enough to find the shallow
/// bugs on every run, few enough that all decoders together stay within seconds.
pub const DEFAULT_CASES: u32 = 256;

/// The runner configuration for decoder properties.
pub fn config() -> ProptestConfig {
    cases(DEFAULT_CASES)
}

/// `default` cases unless `PROPTEST_CASES` says otherwise (`with_cases` alone would
/// ignore the variable).
pub fn cases(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

/// Numbers at and around every boundary a decoder narrows to (u16 ports, u32 weights,
/// u64 indexes, i64 nanoseconds), negative ones and floats.
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            0u64,
            1,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX,
        ])
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
            Number::from_f64(f).map(Value::Number)
        }),
    ]
}

/// Strings a decoder might choke on: any Unicode, Go-duration look-alikes (long digit
/// runs, fractions, multi-byte units), base64 look-alikes, IP look-alikes.
pub fn awkward_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+]?[0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|μs|ms|s|m|h|x|é)?([0-9]{0,3}(s|m))?",
        "[A-Za-z0-9+/=*-]{0,40}",
        "[0-9a-f:.%/ {}]{0,40}",
        Just(String::new()),
    ]
}

/// `key` as a Consul user might spell it: as written, lower case, upper case, or
/// snake case (Consul's decoder accepts them all).
pub fn spelling(key: &'static str) -> impl Strategy<Value = String> {
    (0..4u8).prop_map(move |style| match style {
        0 => key.to_string(),
        1 => key.to_ascii_lowercase(),
        2 => key.to_ascii_uppercase(),
        _ => {
            let mut out = String::new();
            for (i, c) in key.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        }
    })
}

/// An object key: one of `keys` in some spelling, or anything.
fn key(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    if keys.is_empty() {
        return awkward_string().boxed();
    }
    prop_oneof![
        4 => prop::sample::select(keys).prop_flat_map(spelling),
        1 => awkward_string(),
    ]
    .boxed()
}

/// Arbitrary JSON whose object keys are mostly `keys` (so a decoder gets past its
/// first type check and into its nested fields), up to 6 levels deep.
pub fn json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        awkward_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(keys), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// An object (what every decoder expects at the top) built from `json(keys)`.
pub fn object(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::collection::vec((key(keys), json(keys)), 0..12)
        .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()))
        .boxed()
}

/// Text that is not valid JSON, or JSON a recursive decoder could overflow on: deep
/// nesting (up to 100k levels), truncation, numbers past every integer type, bad
/// escapes. The caller may append arbitrary bytes for bad UTF-8.
pub fn hostile_json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            1usize..100_000,
            prop::sample::select(vec!["[", "{\"a\":", "[{\"k\":"])
        )
            .prop_map(|(n, open)| open.repeat(n)),
        (1usize..5_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        "[0-9]{20,400}".prop_map(|digits| format!("{{\"Port\":{digits}}}")),
        "-?[0-9]{1,3}(\\.[0-9]{1,5})?e[-+]?[0-9]{3,6}".prop_map(|n| format!("[{n}]")),
        Just("{\"a\":\"\\ud800\"}".to_string()),
        Just("{\"a\":\"\\u12\"}".to_string()),
        any::<String>(),
        object(&[]).prop_flat_map(|v| {
            let text = v.to_string();
            let len = text.len();
            (Just(text), 0..=len).prop_map(|(t, cut)| t.get(..cut).unwrap_or("").to_string())
        }),
    ]
}

/// Bytes for decoders that take bytes: valid text, hostile JSON, or raw bytes with
/// invalid UTF-8 mixed in.
pub fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        hostile_json_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..512),
        (object(&[]), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(v, junk)| {
            let mut text = v.to_string().into_bytes();
            let at = text.len() / 2;
            text.splice(at..at, junk);
            text
        }),
    ]
}
