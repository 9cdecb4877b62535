//! Properties of the Consul-JSON reader and Go's duration syntax: arbitrary input never
//! panics or hangs, and each accessor either decodes or says why, consistently with the
//! value's JSON type; durations round-trip through Go's `Duration.String()` form.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::config::arbitrary;

/// Go's `time.Duration.String()`, exactly (integer arithmetic), to check the parser
/// against: `1h2m3.5s`, `1.5ms`, `250µs`, `7ns`, `0s`, `-1m0s`.
fn go_string(d: i64) -> String {
    let u = d.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    let frac = |rem: u64, div: u64| -> String {
        if rem == 0 {
            return String::new();
        }
        let width = div.ilog10() as usize;
        format!(".{rem:0width$}").trim_end_matches('0').to_string()
    };
    let body = if u < 1_000_000_000 {
        let (unit, div) = match u {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        format!("{}{}{unit}", u / div, frac(u % div, div))
    } else {
        let (secs, nanos) = (u / 1_000_000_000, u % 1_000_000_000);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{}s", frac(nanos, 1_000_000_000)));
        out
    };
    if d < 0 {
        format!("-{body}")
    } else {
        body
    }
}

#[test]
fn go_durations_known_forms() {
    let ns = |t: &str| parse_go_duration_ns(t);
    assert_eq!(ns("300ms"), Ok(300_000_000));
    assert_eq!(ns("-1.5h"), Ok(-5_400_000_000_000));
    assert_eq!(ns("2h45m"), Ok(9_900_000_000_000));
    assert_eq!(ns("1µs"), Ok(1_000));
    assert_eq!(ns("1μs"), Ok(1_000));
    assert_eq!(ns(".5s"), Ok(500_000_000));
    assert_eq!(ns("+0"), Ok(0));
    assert_eq!(ns("-9223372036854775808ns"), Ok(i64::MIN));
    assert_eq!(ns("9223372036854775807ns"), Ok(i64::MAX));
    // Fractions longer than i64 keep their precision and end (the crate this replaces
    // looped forever on these).
    assert_eq!(ns("1.1111111111111111111111111s"), Ok(1_111_111_111));
    for bad in [
        "",
        "0s0",
        "9223372036854775808ns",
        "1",
        "1x",
        "1µ",
        "é",
        "1é",
        "1.",
        ".s",
        "106751d",
        "2562048h",
        "2562047h2562047h",
    ] {
        assert!(ns(bad).is_err(), "{bad:?}");
    }
    assert!(parse_go_duration("-1s").is_err());
    assert_eq!(go_string(-90_000_000_000), "-1m30s");
    assert_eq!(go_string(3_600_000_000_001), "1h0m0.000000001s");
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn any_text_parses_or_fails_cleanly(text in arbitrary::awkward_string()) {
        if let Ok(ns) = parse_go_duration_ns(&text) {
            // What parses is Go's grammar: digits, dots, signs and unit letters only.
            prop_assert!(text.chars().all(|c| c.is_ascii_digit()
                || ".+-nsuµμmh".contains(c)), "{text:?} parsed as {ns}");
            prop_assert_eq!(parse_go_duration(&text).is_ok(), ns >= 0);
        }
    }

    #[test]
    fn go_strings_round_trip(d in any::<i64>()) {
        prop_assert_eq!(parse_go_duration_ns(&go_string(d)), Ok(d));
    }

    #[test]
    fn sums_of_units_add_up_or_overflow(
        parts in prop::collection::vec(
            (0u64..10_000_000_000_000u64, prop::sample::select(vec![
                ("h", 3_600_000_000_000i128), ("m", 60_000_000_000), ("s", 1_000_000_000),
                ("ms", 1_000_000), ("us", 1_000), ("ns", 1),
            ])),
            1..5,
        ),
        negative in any::<bool>(),
    ) {
        let mut text = String::from(if negative { "-" } else { "" });
        let mut want: i128 = 0;
        for (n, (unit, scale)) in &parts {
            text.push_str(&format!("{n}{unit}"));
            want += *n as i128 * scale;
        }
        let want = if negative { -want } else { want };
        match i64::try_from(want) {
            // Go refuses a component past 2^63 even when the sum would fit; every
            // component here is smaller than the sum, so a sum that fits parses.
            Ok(want) => prop_assert_eq!(parse_go_duration_ns(&text), Ok(want)),
            Err(_) => prop_assert!(parse_go_duration_ns(&text).is_err()),
        }
    }

    #[test]
    fn accessors_agree_with_the_json_type(
        v in arbitrary::object(&["Name", "Port", "Interval", "Tags", "Meta", "Enabled"]),
        strict in any::<bool>(),
    ) {
        let Value::Object(map) = &v else { unreachable!("object() makes objects") };
        let mut o = Obj::new(&v, "root").unwrap();
        for (k, value) in map {
            let names = [k.as_str()];
            // Every accessor on every key: decodes, or a located error; never a panic.
            let s = o.string(&names);
            if !shadowed(map, k) {
                prop_assert_eq!(s.is_ok(), value.is_string() || value.is_null());
            }
            let _ = o.bool(&names);
            // A key another spelling shadows (`Meta` and `meta`) reads the other's value.
            if let (Ok(Some(n)), Some(want), false) =
                (o.u64(&names), value.as_u64(), shadowed(map, k))
            {
                prop_assert_eq!(n, want);
            }
            let _ = o.duration(&names);
            let _ = o.string_list(&names);
            let _ = o.string_map(&names);
            let _ = o.objects(&names);
            if let Ok(Some(child)) = o.object(&names) {
                prop_assert!(child.path().starts_with("root."));
            }
        }
        if !map.keys().any(|k| shadowed(map, k)) {
            prop_assert!(o.unused().is_empty());
            prop_assert!(o.finish(strict).is_ok());
        }
    }

    #[test]
    fn strict_finish_names_an_unread_key(
        v in arbitrary::object(&["Name", "Port"]),
        read in prop::collection::vec(any::<bool>(), 12),
    ) {
        let Value::Object(map) = &v else { unreachable!("object() makes objects") };
        let mut o = Obj::new(&v, "").unwrap();
        for (k, wanted) in map.keys().zip(&read) {
            if *wanted {
                o.ignore(&[k]);
            }
        }
        let unused = o.unused();
        match o.finish(true) {
            Ok(()) => prop_assert!(unused.is_empty()),
            Err(e) => {
                prop_assert!(unused.contains(&e.path.as_str()), "{e} not in {unused:?}");
                prop_assert_eq!(e.message, "unknown configuration key");
            }
        }
    }
}

/// Whether another key of `map` normalises like `key` and comes first: `Obj::get`
/// answers with that one, so the type seen is the other value's.
fn shadowed(map: &serde_json::Map<String, Value>, key: &str) -> bool {
    let n = normalize(key);
    map.iter()
        .take_while(|(k, _)| k.as_str() != key)
        .any(|(k, _)| normalize(k) == n)
}
