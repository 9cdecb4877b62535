//! Decoding Consul's JSON the way Consul does: keys match case-insensitively and with or
//! without underscores (`DeregisterCriticalServiceAfter`, `deregister_critical_service_after`),
//! durations are Go duration strings or integer nanoseconds. Config files are decoded
//! strictly (an unknown key is an error naming the file and the key path); API bodies
//! leniently (unknown keys ignored, as Go's decoder does).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// A decoding problem at a key path such as `services[0].checks[1].interval`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

/// Go's `strconv.ParseBool`, which Consul uses for boolean flags and query values.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, byte for byte: a possibly signed sequence of decimal
/// numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `μs`, `ms`,
/// `s`, `m`, `h`), such as `300ms`, `-1.5h` or `2h45m`; a bare `0` is zero; a number
/// without a unit is an error. Returns nanoseconds (negative for a negative duration).
///
/// Written out here rather than taken from the `go-parse-duration` crate, which loops
/// forever on a fraction of more than 18 digits (`?wait=1.1111111111111111111s`),
/// panics on a multi-byte unit (`1µs`) and overflows on long sums.
pub fn parse_go_duration_ns(text: &str) -> Result<i64, String> {
    const MAX: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {text:?}");
    let mut s = text.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = rest;
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part; Go gives up past 2^63.
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &s[..digits] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= MAX)
                .ok_or_else(invalid)?;
        }
        let pre = digits > 0;
        s = &s[digits..];
        // The fraction: digits past what fits are ignored (precision, not an error).
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow {
                    continue;
                }
                match f
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u64::from(c - b'0')))
                    .filter(|x| *x <= MAX)
                {
                    Some(x) => {
                        f = x;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            post = digits > 0;
            s = &s[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .take_while(|c| !(**c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let unit: u64 = match &s[..unit_len] {
            b"ns" => 1,
            // `µs` (U+00B5 micro sign) and `μs` (U+03BC Greek mu), as Go accepts both.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                return Err(format!(
                    "time: unknown unit {:?} in duration {text:?}",
                    String::from_utf8_lossy(other)
                ))
            }
        };
        s = &s[unit_len..];
        if v > MAX / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // f64 is nanosecond-accurate for fractions of the largest unit (hours).
            v = v
                .checked_add((f as f64 * (unit as f64 / scale)) as u64)
                .filter(|v| *v <= MAX)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= MAX)
            .ok_or_else(invalid)?;
    }
    match (neg, total) {
        (true, MAX) => Ok(i64::MIN),
        (true, t) => Ok(-(t as i64)),
        (false, MAX) => Err(invalid()),
        (false, t) => Ok(t as i64),
    }
}

/// A Go duration that must not be negative, as Consul's fields and parameters take it.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let ns = parse_go_duration_ns(text)?;
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| format!("time: negative duration {text:?}"))
}

fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// One JSON object being decoded; remembers which keys were used so that `finish` can
/// report the rest.
pub struct Obj<'a> {
    path: String,
    entries: Vec<(String, &'a str, &'a Value)>,
    used: Vec<bool>,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: &str) -> Result<Obj<'a>, DecodeError> {
        let Value::Object(map) = value else {
            return Err(DecodeError {
                path: path.to_string(),
                message: format!("expected an object, found {}", kind(value)),
            });
        };
        let entries: Vec<_> = map
            .iter()
            .map(|(k, v)| (normalize(k), k.as_str(), v))
            .collect();
        Ok(Obj {
            path: path.to_string(),
            used: vec![false; entries.len()],
            entries,
        })
    }

    /// This object's key path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Original keys not read yet, in file order.
    pub fn unused(&self) -> Vec<&'a str> {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|((_, orig, _), _)| *orig)
            .collect()
    }

    /// Every entry as written (a map whose keys are data, such as HTTP headers).
    pub fn into_entries(self) -> Vec<(&'a str, &'a Value)> {
        self.entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn err(&self, key: &str, message: impl Into<String>) -> DecodeError {
        DecodeError {
            path: self.child_path(key),
            message: message.into(),
        }
    }

    /// The value of the first of `names` present (aliases), with its original key.
    pub fn get(&mut self, names: &[&str]) -> Option<(&'a str, &'a Value)> {
        for name in names {
            let n = normalize(name);
            if let Some(i) = self.entries.iter().position(|(k, _, _)| *k == n) {
                self.used[i] = true;
                let (_, orig, v) = self.entries[i];
                if v.is_null() {
                    return None;
                }
                return Some((orig, v));
            }
        }
        None
    }

    pub fn string(&mut self, names: &[&str]) -> Result<Option<String>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((k, v)) => Err(self.err(k, format!("expected a string, found {}", kind(v)))),
        }
    }

    pub fn bool(&mut self, names: &[&str]) -> Result<Option<bool>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((k, v)) => Err(self.err(k, format!("expected true or false, found {}", kind(v)))),
        }
    }

    pub fn u64(&mut self, names: &[&str]) -> Result<Option<u64>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Number(n))) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some((k, v)) => Err(self.err(k, format!("expected a non-negative integer, found {v}"))),
        }
    }

    /// A Go duration string (`"10s"`) or integer nanoseconds.
    pub fn duration(&mut self, names: &[&str]) -> Result<Option<Duration>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Number(n))) if n.as_u64().is_some() => {
                Ok(n.as_u64().map(Duration::from_nanos))
            }
            Some((k, Value::String(s))) => match parse_go_duration(s) {
                Ok(d) => Ok(Some(d)),
                Err(_) => Err(self.err(
                    k,
                    format!(
                        "invalid duration {s:?} (use a Go duration such as \"10s\" or \"1m30s\")"
                    ),
                )),
            },
            Some((k, v)) => Err(self.err(k, format!("expected a duration, found {}", kind(v)))),
        }
    }

    pub fn string_list(&mut self, names: &[&str]) -> Result<Option<Vec<String>>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, Value::Array(items))) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(
                        k,
                        format!("expected a list of strings, found {}", kind(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some((k, v)) => {
                Err(self.err(k, format!("expected a list of strings, found {}", kind(v))))
            }
        }
    }

    pub fn string_map(
        &mut self,
        names: &[&str],
    ) -> Result<Option<BTreeMap<String, String>>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, Value::Object(map))) => map
                .iter()
                .map(|(mk, v)| match v {
                    Value::String(s) => Ok((mk.clone(), s.clone())),
                    other => Err(self.err(
                        &format!("{k}.{mk}"),
                        format!("expected a string, found {}", kind(other)),
                    )),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some),
            Some((k, v)) => Err(self.err(k, format!("expected an object, found {}", kind(v)))),
        }
    }

    /// A nested object.
    pub fn object(&mut self, names: &[&str]) -> Result<Option<Obj<'a>>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, v)) => Obj::new(v, &self.child_path(k)).map(Some),
        }
    }

    /// A list of objects (a single object is accepted as a list of one).
    pub fn objects(&mut self, names: &[&str]) -> Result<Vec<Obj<'a>>, DecodeError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((k, Value::Array(items))) => {
                let base = self.child_path(k);
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Obj::new(v, &format!("{base}[{i}]")))
                    .collect()
            }
            Some((k, v @ Value::Object(_))) => Ok(vec![Obj::new(v, &self.child_path(k))?]),
            Some((k, v)) => {
                Err(self.err(k, format!("expected a list of objects, found {}", kind(v))))
            }
        }
    }

    /// Marks keys as accepted without decoding them (fields Rostra takes and ignores).
    /// The object's keys as written (marking none as read).
    pub fn keys(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(_, orig, _)| orig.to_string())
            .collect()
    }

    pub fn ignore(&mut self, names: &[&str]) {
        for name in names {
            let _ = self.get(&[name]);
        }
    }

    /// In strict mode, any key not read is an error naming it.
    pub fn finish(self, strict: bool) -> Result<(), DecodeError> {
        if !strict {
            return Ok(());
        }
        match self
            .entries
            .iter()
            .zip(&self.used)
            .find(|(_, used)| !**used)
        {
            None => Ok(()),
            Some(((_, orig, _), _)) => Err(DecodeError {
                path: self.child_path(orig),
                message: "unknown configuration key".into(),
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_case_and_underscore_insensitively() {
        let v: Value =
            serde_json::json!({"Deregister_Critical_Service_After": "90s", "NAME": "x", "junk": 1});
        let mut o = Obj::new(&v, "service").unwrap();
        assert_eq!(
            o.duration(&["DeregisterCriticalServiceAfter"]).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(o.string(&["name"]).unwrap().as_deref(), Some("x"));
        let e = o.finish(true).unwrap_err();
        assert_eq!(e.to_string(), "service.junk: unknown configuration key");
    }

    #[test]
    fn durations_and_types_are_checked() {
        let v: Value = serde_json::json!({"a": 1500000000u64, "b": "1m30s", "c": "15", "d": true});
        let mut o = Obj::new(&v, "").unwrap();
        assert_eq!(
            o.duration(&["a"]).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(o.duration(&["b"]).unwrap(), Some(Duration::from_secs(90)));
        assert!(o
            .duration(&["c"])
            .unwrap_err()
            .to_string()
            .starts_with("c: invalid duration"));
        assert!(o.string(&["d"]).is_err());
    }
}

#[cfg(test)]
mod proptests;
