//! Consul's `?filter=` (HashiCorp's go-bexpr grammar), evaluated on the JSON each
//! element of a list endpoint is rendered as:
//!
//! ```text
//! expr   := or
//! or     := and ("or" and)*
//! and    := unary ("and" unary)*
//! unary  := "not" unary | "(" or ")" | match
//! match  := sel "==" v | sel "!=" v | sel "is" ["not"] "empty"
//!         | v ["not"] "in" sel | sel ["not"] "contains" v | sel ["not"] "matches" v
//! sel    := ident ("." ident | "[" string "]")*
//! v      := string ("..." or `...`) | bare word (number, bool, identifier)
//! ```
//!
//! `and` binds tighter than `or`; `matches` takes a regular expression (Go's RE2 syntax,
//! which the `regex` crate shares).

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
    Matches(Regex),
    NotMatches(Regex),
    Empty,
    NotEmpty,
}

/// A compiled `matches` pattern, compared by its source.
#[derive(Debug, Clone)]
struct Regex(regex::Regex);

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    selector: Vec<String>,
    op: Op,
    value: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Match(Term),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

fn err(msg: impl std::fmt::Display) -> HttpError {
    HttpError::BadRequest(format!(
        "Failed to create boolean expression evaluator: {msg}"
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A quoted string, unescaped.
    Str(String),
    /// A bare word: an identifier, keyword, number or boolean.
    Word(String),
    Dot,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Eq,
    Ne,
}

fn tokens(input: &str) -> Result<Vec<Tok>, HttpError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err("unterminated string")),
                        Some('\\') if c == '"' => match chars.next() {
                            Some(n) => s.push(n),
                            None => return Err(err("unterminated string")),
                        },
                        Some(ch) if ch == c => break,
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Tok::Str(s));
            }
            '.' => {
                chars.next();
                out.push(Tok::Dot);
            }
            '[' | ']' | '(' | ')' => {
                chars.next();
                out.push(match c {
                    '[' => Tok::LBrack,
                    ']' => Tok::RBrack,
                    '(' => Tok::LParen,
                    _ => Tok::RParen,
                });
            }
            '=' | '!' => {
                chars.next();
                match (c, chars.next()) {
                    ('=', Some('=')) => out.push(Tok::Eq),
                    ('!', Some('=')) => out.push(Tok::Ne),
                    _ => return Err(err(format!("unexpected {c:?}"))),
                }
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || "\"`.[]()=!".contains(ch) {
                        // A number's decimal point is part of the word.
                        if !(ch == '.'
                            && s.chars().all(|d| d.is_ascii_digit() || d == '-')
                            && !s.is_empty())
                        {
                            break;
                        }
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Tok::Word(s));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.at + ahead)
    }

    fn is_word(&self, ahead: usize, w: &str) -> bool {
        matches!(self.peek(ahead), Some(Tok::Word(x)) if x == w)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, HttpError> {
        let mut items = vec![self.and()?];
        while self.is_word(0, "or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, HttpError> {
        let mut items = vec![self.unary()?];
        while self.is_word(0, "and") {
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, HttpError> {
        // `not` before an expression, unless it is a value's `not in`.
        if self.is_word(0, "not") && !self.is_word(1, "in") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek(0) == Some(&Tok::LParen) {
            self.at += 1;
            let inner = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err(err("expected )"));
            }
            return Ok(inner);
        }
        self.matcher().map(Expr::Match)
    }

    fn value(&mut self) -> Result<String, HttpError> {
        match self.next() {
            Some(Tok::Str(s)) | Some(Tok::Word(s)) => Ok(s),
            other => Err(err(format!("expected a value, found {other:?}"))),
        }
    }

    fn selector(&mut self) -> Result<Vec<String>, HttpError> {
        let mut parts = match self.next() {
            Some(Tok::Word(w)) if !w.is_empty() => vec![w],
            other => return Err(err(format!("expected a selector, found {other:?}"))),
        };
        loop {
            match self.peek(0) {
                Some(Tok::Dot) => {
                    self.at += 1;
                    match self.next() {
                        Some(Tok::Word(w)) => parts.push(w),
                        other => {
                            return Err(err(format!("expected a name after ., found {other:?}")))
                        }
                    }
                }
                Some(Tok::LBrack) => {
                    self.at += 1;
                    match (self.next(), self.next()) {
                        (Some(Tok::Str(k)), Some(Tok::RBrack)) => parts.push(k),
                        _ => return Err(err("expected [\"key\"]")),
                    }
                }
                _ => return Ok(parts),
            }
        }
    }

    fn matcher(&mut self) -> Result<Term, HttpError> {
        // `value in Selector` / `value not in Selector`.
        let value_first = matches!(self.peek(0), Some(Tok::Str(_)))
            || self.is_word(1, "in")
            || (self.is_word(1, "not") && self.is_word(2, "in"));
        if value_first {
            let value = self.value()?;
            let op = if self.is_word(0, "in") {
                self.at += 1;
                Op::In
            } else if self.is_word(0, "not") && self.is_word(1, "in") {
                self.at += 2;
                Op::NotIn
            } else {
                return Err(err(format!("expected in or not in after {value:?}")));
            };
            let selector = self.selector()?;
            return Ok(Term {
                selector,
                op,
                value,
            });
        }
        let selector = self.selector()?;
        let op = match self.next() {
            Some(Tok::Eq) => Op::Eq,
            Some(Tok::Ne) => Op::Ne,
            Some(Tok::Word(w)) => match w.as_str() {
                "contains" => Op::Contains,
                "matches" => return self.regex_term(selector, false),
                "is" if self.is_word(0, "empty") => {
                    self.at += 1;
                    Op::Empty
                }
                "is" if self.is_word(0, "not") && self.is_word(1, "empty") => {
                    self.at += 2;
                    Op::NotEmpty
                }
                "not" if self.is_word(0, "contains") => {
                    self.at += 1;
                    Op::NotContains
                }
                "not" if self.is_word(0, "matches") => {
                    self.at += 1;
                    return self.regex_term(selector, true);
                }
                _ => {
                    return Err(err(format!(
                        "unsupported operator {w:?} after {}",
                        selector.join(".")
                    )))
                }
            },
            other => {
                return Err(err(format!(
                    "expected an operator after {}, found {other:?}",
                    selector.join(".")
                )))
            }
        };
        if matches!(op, Op::Empty | Op::NotEmpty) {
            return Ok(Term {
                selector,
                op,
                value: String::new(),
            });
        }
        let value = self.value()?;
        Ok(Term {
            selector,
            op,
            value,
        })
    }

    /// `sel matches "re"` / `sel not matches "re"`, the pattern compiled once here.
    fn regex_term(&mut self, selector: Vec<String>, negated: bool) -> Result<Term, HttpError> {
        let value = self.value()?;
        let re = regex::Regex::new(&value)
            .map(Regex)
            .map_err(|e| err(format!("invalid regular expression {value:?}: {e}")))?;
        let op = if negated {
            Op::NotMatches(re)
        } else {
            Op::Matches(re)
        };
        Ok(Term {
            selector,
            op,
            value,
        })
    }
}

impl Filter {
    pub fn parse(input: &str) -> Result<Filter, HttpError> {
        let toks = tokens(input)?;
        if toks.is_empty() {
            return Err(err("empty expression"));
        }
        let mut p = Parser { toks, at: 0 };
        let expr = p.or()?;
        if let Some(t) = p.peek(0) {
            return Err(err(format!("unexpected {t:?}")));
        }
        Ok(Filter(expr))
    }

    /// Consul rejects selectors its result type does not have; `template` is one
    /// rendered item with every field present.
    pub fn validate(&self, template: &Value) -> Result<(), HttpError> {
        fn walk(e: &Expr, template: &Value) -> Result<(), HttpError> {
            match e {
                Expr::Or(v) | Expr::And(v) => v.iter().try_for_each(|e| walk(e, template)),
                Expr::Not(e) => walk(e, template),
                Expr::Match(t) => {
                    if template.get(&t.selector[0]).is_none() {
                        return Err(err(format!(
                            "Selector {:?} is not valid",
                            t.selector.join(".")
                        )));
                    }
                    Ok(())
                }
            }
        }
        walk(&self.0, template)
    }

    pub fn matches(&self, item: &Value) -> bool {
        fn eval(e: &Expr, item: &Value) -> bool {
            match e {
                Expr::Or(v) => v.iter().any(|e| eval(e, item)),
                Expr::And(v) => v.iter().all(|e| eval(e, item)),
                Expr::Not(e) => !eval(e, item),
                Expr::Match(t) => t.matches(item),
            }
        }
        eval(&self.0, item)
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
        let regex_match = |r: &Regex| match v {
            Value::Array(items) => items
                .iter()
                .any(|x| scalar(x).is_some_and(|s| r.0.is_match(&s))),
            other => scalar(other).is_some_and(|s| r.0.is_match(&s)),
        };
        let empty = match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        match &self.op {
            Op::Eq => scalar(v).as_deref() == Some(&self.value),
            Op::Ne => scalar(v).as_deref() != Some(&self.value),
            Op::In | Op::Contains => contains(),
            Op::NotIn | Op::NotContains => !contains(),
            Op::Matches(r) => regex_match(r),
            Op::NotMatches(r) => !regex_match(r),
            Op::Empty => empty,
            Op::NotEmpty => !empty,
        }
    }
}

/// A request's `?filter`, parsed and its selectors checked against `template` (an item
/// with every field); None when there is none.
pub fn from_param(filter: Option<&str>, template: &Value) -> Result<Option<Filter>, HttpError> {
    match filter {
        None | Some("") => Ok(None),
        Some(f) => {
            let f = Filter::parse(f)?;
            f.validate(template)?;
            Ok(Some(f))
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
    let f = match template {
        Some(t) => from_param(filter, t)?,
        None => filter
            .filter(|f| !f.is_empty())
            .map(Filter::parse)
            .transpose()?,
    };
    Ok(match f {
        None => items,
        Some(f) => items.into_iter().filter(|i| f.matches(i)).collect(),
    })
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

    #[test]
    fn not_parentheses_matches_and_bracket_selectors() {
        let item = serde_json::json!({"ServiceName": "web-1", "ServiceTags": ["v1"], "ServiceMeta": {"a.b": "x", "env": "prod"}, "Weight": 1.5});
        let m = |f: &str| Filter::parse(f).unwrap().matches(&item);
        assert!(m(r#"ServiceName matches "^web-[0-9]+$""#));
        assert!(!m(r#"ServiceName not matches "^web""#));
        assert!(m(r#"ServiceMeta["a.b"] == x"#));
        assert!(m(
            r#"ServiceMeta["env"] == "prod" and not ServiceName == "db""#
        ));
        assert!(!m(r#"not (ServiceName == "web-1" or "v2" in ServiceTags)"#));
        assert!(m(
            r#"(ServiceName == "db" or "v1" in ServiceTags) and ServiceMeta.env != dev"#
        ));
        assert!(m("Weight == 1.5"));
        assert!(m(r#"not not "v1" in ServiceTags"#));
        for bad in [
            "(ServiceName == web",
            "ServiceName == web)",
            r#"ServiceName matches "(""#,
            r#"ServiceMeta["env" == x"#,
            "not",
            "ServiceName ==",
            "== web",
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
                "==",
                "!=",
                "in",
                "not in",
                "contains",
                "not contains",
                "matches",
                "not matches",
                "is empty",
                "is not empty",
            ]);
            (selector(), op, any::<String>(), "[a-z]{1,5}").prop_map(|(selector, op, value, re)| {
                let compiled = || Regex(regex::Regex::new(&re).unwrap());
                let (op, value) = match op {
                    "==" => (Op::Eq, value),
                    "!=" => (Op::Ne, value),
                    "in" => (Op::In, value),
                    "not in" => (Op::NotIn, value),
                    "contains" => (Op::Contains, value),
                    "not contains" => (Op::NotContains, value),
                    "matches" => (Op::Matches(compiled()), re.clone()),
                    "not matches" => (Op::NotMatches(compiled()), re.clone()),
                    "is empty" => (Op::Empty, String::new()),
                    _ => (Op::NotEmpty, String::new()),
                };
                Term {
                    selector,
                    op,
                    value,
                }
            })
        }

        fn expr() -> impl Strategy<Value = Expr> {
            term()
                .prop_map(Expr::Match)
                .prop_recursive(3, 16, 3, |inner| {
                    prop_oneof![
                        prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                        prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                        inner.prop_map(|e| Expr::Not(Box::new(e))),
                    ]
                })
        }

        /// The expression text for a parsed filter: values always quoted, every
        /// sub-expression in parentheses.
        fn render(e: &Expr) -> String {
            let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            let join = |v: &[Expr], w: &str| {
                v.iter()
                    .map(|e| format!("({})", render(e)))
                    .collect::<Vec<_>>()
                    .join(w)
            };
            match e {
                Expr::Or(v) => join(v, " or "),
                Expr::And(v) => join(v, " and "),
                Expr::Not(e) => format!("not ({})", render(e)),
                Expr::Match(t) => {
                    let sel = t.selector.join(".");
                    let v = quote(&t.value);
                    match t.op {
                        Op::Eq => format!("{sel} == {v}"),
                        Op::Ne => format!("{sel} != {v}"),
                        Op::In => format!("{v} in {sel}"),
                        Op::NotIn => format!("{v} not in {sel}"),
                        Op::Contains => format!("{sel} contains {v}"),
                        Op::NotContains => format!("{sel} not contains {v}"),
                        Op::Matches(_) => format!("{sel} matches {v}"),
                        Op::NotMatches(_) => format!("{sel} not matches {v}"),
                        Op::Empty => format!("{sel} is empty"),
                        Op::NotEmpty => format!("{sel} is not empty"),
                    }
                }
            }
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
            fn expressions_round_trip(e in expr()) {
                let text = render(&e);
                prop_assert_eq!(Filter::parse(&text).ok(), Some(Filter(e)), "{}", text);
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
