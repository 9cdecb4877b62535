//! Consul's `?filter=` for list endpoints, the subset scripts use: `Selector == "value"`,
//! `!=`, `"value" in Selector`, `not in`, `Selector contains "value"`, `not contains`,
//! `is empty`, `is not empty`, joined with `and` / `or` (and binds tighter), evaluated on
//! the JSON each element is rendered as. Selectors are dotted paths (`ServiceMeta.env`).

use serde_json::Value;

use super::error::HttpError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    NotContains,
    Empty,
    NotEmpty,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    selector: Vec<String>,
    op: Op,
    value: String,
}

/// A parsed filter: OR of ANDs of terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Vec<Vec<Term>>);

fn err(msg: impl std::fmt::Display) -> HttpError {
    HttpError::BadRequest(format!(
        "Failed to create boolean expression evaluator: {msg}"
    ))
}

/// Splits on whitespace, keeping quoted strings whole (quotes removed, `\"` unescaped).
fn tokens(input: &str) -> Result<Vec<(String, bool)>, HttpError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            let quote = c;
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(err("unterminated string")),
                    Some('\\') if quote == '"' => {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    }
                    Some(ch) if ch == quote => break,
                    Some(ch) => s.push(ch),
                }
            }
            out.push((s, true));
        } else if c == '=' || c == '!' {
            // `==` and `!=` need no surrounding spaces (`ServicePort==80`).
            let mut op = String::new();
            while let Some(&ch) = chars.peek() {
                if ch != '=' && ch != '!' {
                    break;
                }
                op.push(ch);
                chars.next();
            }
            out.push((op, false));
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '=' || ch == '!' || ch == '"' || ch == '`' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            out.push((s, false));
        }
    }
    Ok(out)
}

impl Filter {
    pub fn parse(input: &str) -> Result<Filter, HttpError> {
        let toks = tokens(input)?;
        let mut ors = vec![Vec::new()];
        let mut i = 0;
        let word = |i: usize, w: &str| toks.get(i).is_some_and(|(t, q)| !q && t == w);
        while i < toks.len() {
            let term = if toks[i].1
                || word(i + 1, "in")
                || (word(i + 1, "not") && word(i + 2, "in"))
            {
                // "value" in Selector / "value" not in Selector; a quoted value is never
                // a selector, so anything else after it is an error.
                if !(word(i + 1, "in") || (word(i + 1, "not") && word(i + 2, "in"))) {
                    return Err(err(format!("expected in or not in after {:?}", toks[i].0)));
                }
                let value = toks[i].0.clone();
                let (op, sel_at) = if word(i + 1, "in") {
                    (Op::In, i + 2)
                } else {
                    (Op::NotIn, i + 3)
                };
                let sel = toks.get(sel_at).ok_or_else(|| err("missing selector"))?;
                i = sel_at + 1;
                Term {
                    selector: sel.0.split('.').map(String::from).collect(),
                    op,
                    value,
                }
            } else {
                let selector: Vec<String> = toks[i].0.split('.').map(String::from).collect();
                let (op, consumed) = match (
                    toks.get(i + 1).map(|t| t.0.as_str()),
                    toks.get(i + 2).map(|t| t.0.as_str()),
                ) {
                    (Some("=="), _) => (Op::Eq, 2),
                    (Some("!="), _) => (Op::Ne, 2),
                    (Some("contains"), _) => (Op::Contains, 2),
                    (Some("not"), Some("contains")) => (Op::NotContains, 3),
                    (Some("is"), Some("empty")) => (Op::Empty, 3),
                    (Some("is"), Some("not")) if word(i + 3, "empty") => (Op::NotEmpty, 4),
                    _ => return Err(err(format!("unsupported expression near {:?}", toks[i].0))),
                };
                let value = if matches!(op, Op::Empty | Op::NotEmpty) {
                    i += consumed;
                    String::new()
                } else {
                    let v = toks
                        .get(i + consumed)
                        .ok_or_else(|| err("missing value"))?
                        .0
                        .clone();
                    i += consumed + 1;
                    v
                };
                Term {
                    selector,
                    op,
                    value,
                }
            };
            ors.last_mut().expect("never empty").push(term);
            match toks.get(i).map(|t| t.0.as_str()) {
                None => break,
                Some("and") => i += 1,
                Some("or") => {
                    i += 1;
                    ors.push(Vec::new());
                }
                Some(other) => return Err(err(format!("expected and/or, found {other:?}"))),
            }
        }
        if ors.iter().any(|a| a.is_empty()) {
            return Err(err("empty expression"));
        }
        Ok(Filter(ors))
    }

    /// Consul rejects selectors its result type does not have; `template` is one
    /// rendered item with every field present.
    pub fn validate(&self, template: &Value) -> Result<(), HttpError> {
        for term in self.0.iter().flatten() {
            let top = &term.selector[0];
            if template.get(top).is_none() {
                return Err(err(format!(
                    "Selector {:?} is not valid",
                    term.selector.join(".")
                )));
            }
        }
        Ok(())
    }

    pub fn matches(&self, item: &Value) -> bool {
        self.0.iter().any(|and| and.iter().all(|t| t.matches(item)))
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Term {
    fn matches(&self, item: &Value) -> bool {
        let mut v = item;
        for part in &self.selector {
            match v.get(part) {
                Some(next) => v = next,
                None => {
                    v = &Value::Null;
                    break;
                }
            }
        }
        let contains = || match v {
            Value::Array(items) => items
                .iter()
                .any(|x| scalar(x).as_deref() == Some(&self.value)),
            Value::Object(map) => map.contains_key(&self.value),
            Value::String(s) => s.contains(&self.value),
            _ => false,
        };
        let empty = match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        match self.op {
            Op::Eq => scalar(v).as_deref() == Some(&self.value),
            Op::Ne => scalar(v).as_deref() != Some(&self.value),
            Op::In | Op::Contains => contains(),
            Op::NotIn | Op::NotContains => !contains(),
            Op::Empty => empty,
            Op::NotEmpty => !empty,
        }
    }
}

/// Keeps the elements of `items` that `filter` (if any) matches; selectors are checked
/// against `template` (an item with every field) when given.
pub fn apply(
    filter: Option<&str>,
    items: Vec<Value>,
    template: Option<&Value>,
) -> Result<Vec<Value>, HttpError> {
    match filter {
        None | Some("") => Ok(items),
        Some(f) => {
            let f = Filter::parse(f)?;
            if let Some(t) = template {
                f.validate(t)?;
            }
            Ok(items.into_iter().filter(|i| f.matches(i)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_membership_and_boolean_logic() {
        let item = serde_json::json!({"ServiceName": "web", "ServiceTags": ["v1", "primary"], "ServiceMeta": {"env": "prod"}, "ServicePort": 80});
        let m = |f: &str| Filter::parse(f).unwrap().matches(&item);
        assert!(m(r#"ServiceName == "web""#));
        assert!(m(r#"ServiceName=="web""#));
        assert!(m("ServicePort==80"));
        assert!(m("ServicePort!=81"));
        assert!(m("ServiceName == web"));
        assert!(!m(r#"ServiceName != "web""#));
        assert!(m(r#""v1" in ServiceTags"#));
        assert!(m(r#""v2" not in ServiceTags"#));
        assert!(m(r#"ServiceTags contains "primary""#));
        assert!(m(r#"ServiceMeta.env == "prod" and ServicePort == 80"#));
        assert!(m(r#"ServiceMeta.env == "dev" or ServiceName == "web""#));
        assert!(m("ServiceMeta.missing is empty"));
        assert!(m("ServiceTags is not empty"));
        for bad in [
            "",
            "ServiceName",
            r#"ServiceName === "x""#,
            r#"ServiceName == "x" xor a == b"#,
            r#"a == "unterminated"#,
            r#""v1" == ServiceTags"#,
            r#""v1" ServiceTags"#,
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;
        use crate::config::arbitrary;

        /// Selectors: dotted names starting upper case, so never a keyword.
        fn selector() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec("[A-Z][A-Za-z0-9_]{0,8}", 1..4)
        }

        fn term() -> impl Strategy<Value = Term> {
            let op = prop::sample::select(vec![
                Op::Eq,
                Op::Ne,
                Op::In,
                Op::NotIn,
                Op::Contains,
                Op::NotContains,
                Op::Empty,
                Op::NotEmpty,
            ]);
            (selector(), op, any::<String>()).prop_map(|(selector, op, value)| {
                let value = if matches!(op, Op::Empty | Op::NotEmpty) {
                    String::new()
                } else {
                    value
                };
                Term {
                    selector,
                    op,
                    value,
                }
            })
        }

        /// The expression text for a parsed filter, values always quoted.
        fn render(f: &Filter) -> String {
            let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            f.0.iter()
                .map(|and| {
                    and.iter()
                        .map(|t| {
                            let sel = t.selector.join(".");
                            let v = quote(&t.value);
                            match t.op {
                                Op::Eq => format!("{sel} == {v}"),
                                Op::Ne => format!("{sel} != {v}"),
                                Op::In => format!("{v} in {sel}"),
                                Op::NotIn => format!("{v} not in {sel}"),
                                Op::Contains => format!("{sel} contains {v}"),
                                Op::NotContains => format!("{sel} not contains {v}"),
                                Op::Empty => format!("{sel} is empty"),
                                Op::NotEmpty => format!("{sel} is not empty"),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" and ")
                })
                .collect::<Vec<_>>()
                .join(" or ")
        }

        /// Filter-like text: the grammar's words and symbols in any order, or anything.
        fn text() -> impl Strategy<Value = String> {
            let word = prop_oneof![
                prop::sample::select(vec![
                    "in",
                    "not",
                    "and",
                    "or",
                    "is",
                    "empty",
                    "contains",
                    "==",
                    "!=",
                    "=",
                    "!",
                    "\"",
                    "`",
                    "\\",
                    ".",
                    "Service.Name",
                    "\"x\"",
                ])
                .prop_map(String::from),
                arbitrary::awkward_string(),
            ];
            prop_oneof![
                prop::collection::vec(word, 0..12).prop_map(|w| w.join(" ")),
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            #[test]
            fn expressions_round_trip(
                ors in prop::collection::vec(prop::collection::vec(term(), 1..4), 1..4),
            ) {
                let f = Filter(ors);
                let text = render(&f);
                prop_assert_eq!(Filter::parse(&text).ok(), Some(f), "{}", text);
            }

            #[test]
            fn any_text_parses_or_is_refused_and_any_item_evaluates(
                text in text(),
                item in arbitrary::json(&["ServiceName", "Service", "Name", "Tags"]),
                template in arbitrary::json(&["ServiceName", "Service"]),
            ) {
                match Filter::parse(&text) {
                    Ok(f) => {
                        let _ = f.matches(&item);
                        let _ = f.validate(&template);
                        let kept = apply(Some(&text), vec![item.clone()], None).unwrap();
                        prop_assert_eq!(kept.len(), usize::from(f.matches(&item)));
                    }
                    Err(HttpError::BadRequest(m)) => {
                        prop_assert!(m.starts_with("Failed to create boolean expression evaluator"));
                    }
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
            }
        }
    }
}
