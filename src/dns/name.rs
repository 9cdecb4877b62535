//! Consul's DNS names, parsed into what they ask for. Pure: no catalog, no sockets, so
//! every form is unit-tested here.
//!
//! Mirrors the dispatch in Consul's `agent/dns.go`: below the domain, the rightmost of
//! `node`, `service` and `addr` names the kind of lookup, the labels after it are the
//! locality (`<dc>` or `<dc>.dc`, or nothing for the local datacenter) and the labels
//! before it are the node, or the service with its tag. Names are compared in lower case
//! (DNS names are case-insensitive); the caller lower-cases the question's labels.

use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::records::parse_hex_ip;

/// What a name inside the Consul domain asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// The domain itself (`consul.`), where the SOA lives.
    Apex,
    /// `<node>.node[.<dc>[.dc]]`: the node's address.
    Node { name: String, dc: Option<String> },
    /// `[<tag>.]<service>.service[.<dc>[.dc]]` and the RFC 2782 forms
    /// `_<service>._<tag>[.service][.<dc>]`: healthy instances.
    Service {
        name: String,
        /// `None`: every instance (no tag given, or RFC 2782's `_tcp`).
        tag: Option<String>,
        dc: Option<String>,
    },
    /// `<hex-ip>.addr[.<dc>[.dc]]`: the SRV target Consul uses for an instance whose
    /// address is not its node's.
    Addr { ip: IpAddr, dc: Option<String> },
    /// Inside the domain but in no form Consul answers: NXDOMAIN.
    Unknown,
}

impl Question {
    /// The datacenter the name names, if any.
    pub fn datacenter(&self) -> Option<&str> {
        match self {
            Question::Node { dc, .. }
            | Question::Service { dc, .. }
            | Question::Addr { dc, .. } => dc.as_deref(),
            Question::Apex | Question::Unknown => None,
        }
    }
}

/// The labels of `name`, lower-cased, leftmost first (`Web.Service.CONSUL.` →
/// `["web", "service", "consul"]`).
pub fn labels_of(name: &Name) -> Vec<String> {
    name.iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect()
}

/// The labels of `qname` below `domain` (both lower-case), or `None` when `qname` is not
/// inside `domain`.
pub fn strip_domain<'a>(qname: &'a [String], domain: &[String]) -> Option<&'a [String]> {
    let below = qname.len().checked_sub(domain.len())?;
    (qname[below..] == *domain).then_some(&qname[..below])
}

/// Parses the labels below the domain. `srv` says whether the question's type is SRV,
/// which alone allows the RFC 2782 form without the `service` label.
pub fn parse(labels: &[String], srv: bool) -> Question {
    if labels.is_empty() {
        return Question::Apex;
    }
    let kind = labels
        .iter()
        .rposition(|l| matches!(l.as_str(), "node" | "service" | "addr"));
    let Some(i) = kind else {
        return rfc2782_without_service(labels, srv);
    };
    let (parts, suffix) = (&labels[..i], &labels[i + 1..]);
    let Some(dc) = locality(suffix) else {
        return Question::Unknown;
    };
    match labels[i].as_str() {
        "node" if !parts.is_empty() => Question::Node {
            name: parts.join("."),
            dc,
        },
        "service" => service(parts, dc),
        "addr" => match parts {
            [hex] => parse_hex_ip(hex).map_or(Question::Unknown, |ip| Question::Addr { ip, dc }),
            _ => Question::Unknown,
        },
        _ => Question::Unknown,
    }
}

/// `[]` (local), `[<dc>]` or `[<dc>, "dc"]`; `None` for anything else.
fn locality(suffix: &[String]) -> Option<Option<String>> {
    match suffix {
        [] => Some(None),
        [dc] => Some(Some(dc.clone())),
        [dc, kind] if kind == "dc" => Some(Some(dc.clone())),
        _ => None,
    }
}

/// The labels before `service`: `_<name>._<tag>` (RFC 2782, `_tcp` meaning no tag),
/// or Consul's legacy `[<tag>[.<more tag>]].<name>`, all leading labels forming one tag.
fn service(parts: &[String], dc: Option<String>) -> Question {
    if let [name, tag] = parts {
        if let (Some(name), Some(tag)) = (name.strip_prefix('_'), tag.strip_prefix('_')) {
            return rfc2782(name, tag, dc);
        }
    }
    match parts.split_last() {
        Some((name, tags)) if !name.is_empty() => Question::Service {
            name: name.clone(),
            tag: (!tags.is_empty()).then(|| tags.join(".")),
            dc,
        },
        _ => Question::Unknown,
    }
}

fn rfc2782(name: &str, tag: &str, dc: Option<String>) -> Question {
    if name.is_empty() || tag.is_empty() {
        return Question::Unknown;
    }
    Question::Service {
        name: name.to_string(),
        tag: (tag != "tcp").then(|| tag.to_string()),
        dc,
    }
}

/// `_<service>._<tag>[.<dc>[.dc]]` for SRV questions (Consul issue #3200: the
/// `service` label may be left out when the last label before the domain starts with `_`).
fn rfc2782_without_service(labels: &[String], srv: bool) -> Question {
    if !srv || labels.len() < 2 {
        return Question::Unknown;
    }
    let (name, tag) = (&labels[0], &labels[1]);
    let Some(dc) = locality(&labels[2..]) else {
        return Question::Unknown;
    };
    match (name.strip_prefix('_'), tag.strip_prefix('_')) {
        (Some(name), Some(tag)) => rfc2782(name, tag, dc),
        _ => Question::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn q(name: &str, srv: bool) -> Question {
        let name = Name::from_ascii(name).unwrap();
        let labels = labels_of(&name);
        let domain = vec!["consul".to_string()];
        parse(
            strip_domain(&labels, &domain).expect("inside the domain"),
            srv,
        )
    }

    fn svc(name: &str, tag: Option<&str>, dc: Option<&str>) -> Question {
        Question::Service {
            name: name.into(),
            tag: tag.map(Into::into),
            dc: dc.map(Into::into),
        }
    }

    fn node(name: &str, dc: Option<&str>) -> Question {
        Question::Node {
            name: name.into(),
            dc: dc.map(Into::into),
        }
    }

    #[test]
    fn strips_the_domain_or_says_outside() {
        let labels = |s: &str| labels_of(&Name::from_ascii(s).unwrap());
        let domain = labels("consul.");
        assert_eq!(
            strip_domain(&labels("web.service.consul."), &domain),
            Some(&["web".to_string(), "service".to_string()][..])
        );
        assert_eq!(strip_domain(&labels("consul."), &domain), Some(&[][..]));
        assert_eq!(strip_domain(&labels("example.com."), &domain), None);
        assert_eq!(strip_domain(&labels("notconsul."), &domain), None);
        assert_eq!(strip_domain(&labels("."), &domain), None);
        let two = labels("my.domain.");
        assert_eq!(
            strip_domain(&labels("a.node.my.domain."), &two),
            Some(&["a".to_string(), "node".to_string()][..])
        );
        assert_eq!(strip_domain(&labels("a.node.domain."), &two), None);
    }

    #[test]
    fn node_forms() {
        assert_eq!(q("foo.node.consul.", false), node("foo", None));
        assert_eq!(q("foo.node.dc1.consul.", false), node("foo", Some("dc1")));
        assert_eq!(
            q("foo.node.dc1.dc.consul.", false),
            node("foo", Some("dc1"))
        );
        assert_eq!(q("a.b.node.consul.", false), node("a.b", None));
        assert_eq!(q("node.consul.", false), Question::Unknown);
        assert_eq!(q("foo.node.dc1.x.consul.", false), Question::Unknown);
        assert_eq!(q("foo.node.a.b.c.consul.", false), Question::Unknown);
    }

    #[test]
    fn service_and_tag_forms() {
        assert_eq!(q("web.service.consul.", false), svc("web", None, None));
        assert_eq!(
            q("web.service.dc1.consul.", false),
            svc("web", None, Some("dc1"))
        );
        assert_eq!(
            q("web.service.dc1.dc.consul.", false),
            svc("web", None, Some("dc1"))
        );
        assert_eq!(
            q("primary.web.service.consul.", false),
            svc("web", Some("primary"), None)
        );
        // Legacy form: every label before the service is one tag.
        assert_eq!(
            q("v1.2.web.service.consul.", false),
            svc("web", Some("v1.2"), None)
        );
        assert_eq!(q("service.consul.", false), Question::Unknown);
        // The rightmost kind label wins.
        assert_eq!(
            q("x.node.service.consul.", false),
            svc("node", Some("x"), None)
        );
    }

    #[test]
    fn rfc2782_forms() {
        assert_eq!(q("_web._tcp.service.consul.", true), svc("web", None, None));
        assert_eq!(
            q("_web._tcp.service.dc1.consul.", true),
            svc("web", None, Some("dc1"))
        );
        assert_eq!(
            q("_web._primary.service.consul.", true),
            svc("web", Some("primary"), None)
        );
        // `_udp` is a tag like any other; only `_tcp` means "no tag".
        assert_eq!(
            q("_web._udp.service.consul.", true),
            svc("web", Some("udp"), None)
        );
        // SRV questions may leave out `.service`.
        assert_eq!(q("_web._tcp.consul.", true), svc("web", None, None));
        assert_eq!(
            q("_web._tcp.dc1.consul.", true),
            svc("web", None, Some("dc1"))
        );
        assert_eq!(
            q("_web._tcp.dc1.dc.consul.", true),
            svc("web", None, Some("dc1"))
        );
        // ... but only SRV questions, and only with both underscores.
        assert_eq!(q("_web._tcp.consul.", false), Question::Unknown);
        assert_eq!(q("web._tcp.consul.", true), Question::Unknown);
        assert_eq!(q("_._tcp.service.consul.", true), Question::Unknown);
        assert_eq!(q("_web.consul.", true), Question::Unknown);
        // With `.service`, the form is recognised for any question type.
        assert_eq!(
            q("_web._tcp.service.consul.", false),
            svc("web", None, None)
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(q("WEB.Service.CONSUL.", false), svc("web", None, None));
        assert_eq!(
            q("Primary.Web.SERVICE.DC1.consul.", false),
            svc("web", Some("primary"), Some("dc1"))
        );
        assert_eq!(q("Foo.NODE.Consul.", false), node("foo", None));
        assert_eq!(q("_Web._TCP.Consul.", true), svc("web", None, None));
    }

    #[test]
    fn addr_and_apex() {
        assert_eq!(
            q("c000020a.addr.dc1.consul.", false),
            Question::Addr {
                ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                dc: Some("dc1".into())
            }
        );
        assert_eq!(
            q("20010db8000000000000000000000001.addr.consul.", false),
            Question::Addr {
                ip: IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
                dc: None
            }
        );
        assert_eq!(q("zz00020a.addr.consul.", false), Question::Unknown);
        assert_eq!(q("c00002.addr.consul.", false), Question::Unknown);
        assert_eq!(q("consul.", false), Question::Apex);
        assert_eq!(q("nothing.consul.", false), Question::Unknown);
        assert_eq!(q("foo.bar.consul.", true), Question::Unknown);
    }

    #[test]
    fn datacenter_is_reported() {
        assert_eq!(q("foo.node.dc2.consul.", false).datacenter(), Some("dc2"));
        assert_eq!(q("web.service.consul.", false).datacenter(), None);
        assert_eq!(Question::Apex.datacenter(), None);
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;
        use crate::config::arbitrary;
        use crate::dns::records::hex_ip;

        /// A label that is not one of the kind words and has no dot or leading `_`.
        fn word() -> impl Strategy<Value = String> {
            "[a-z0-9][a-z0-9-]{0,20}".prop_filter("not a kind label", |l| {
                !matches!(l.as_str(), "node" | "service" | "addr" | "dc")
            })
        }

        fn labels(words: &[String]) -> Vec<String> {
            words
                .iter()
                .flat_map(|w| w.split('.'))
                .map(String::from)
                .collect()
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// Any labels (empty ones, dots inside, non-ASCII, kind words anywhere)
            /// parse into some question; none panics.
            #[test]
            fn any_labels_parse(
                ls in prop::collection::vec(prop_oneof![
                    prop::sample::select(vec!["node", "service", "addr", "dc", "_tcp", "_", ""])
                        .prop_map(String::from),
                    arbitrary::awkward_string(),
                ], 0..8),
                srv in any::<bool>(),
            ) {
                let q = parse(&ls, srv);
                if ls.is_empty() {
                    prop_assert_eq!(q, Question::Apex);
                }
            }

            #[test]
            fn service_names_round_trip(
                name in word(), tag in prop::option::of(word()), dc in prop::option::of(word()),
                dc_label in any::<bool>(),
            ) {
                let mut ls: Vec<String> = tag.iter().cloned().collect();
                ls.extend([name.clone(), "service".into()]);
                ls.extend(dc.iter().cloned());
                if dc.is_some() && dc_label {
                    ls.push("dc".into());
                }
                prop_assert_eq!(parse(&ls, false), Question::Service { name, tag, dc });
            }

            #[test]
            fn node_names_round_trip(parts in prop::collection::vec(word(), 1..4), dc in prop::option::of(word())) {
                let mut ls = labels(&parts);
                ls.push("node".into());
                ls.extend(dc.iter().cloned());
                prop_assert_eq!(parse(&ls, false), Question::Node { name: parts.join("."), dc });
            }

            #[test]
            fn addr_names_round_trip(ip in any::<IpAddr>(), dc in prop::option::of(word())) {
                let mut ls = vec![hex_ip(ip), "addr".into()];
                ls.extend(dc.iter().cloned());
                prop_assert_eq!(parse(&ls, true), Question::Addr { ip, dc });
            }

            #[test]
            fn strip_domain_keeps_what_is_below(
                below in prop::collection::vec(arbitrary::awkward_string(), 0..5),
                domain in prop::collection::vec(word(), 1..3),
                other in prop::collection::vec(word(), 0..5),
            ) {
                let mut qname = below.clone();
                qname.extend(domain.iter().cloned());
                prop_assert_eq!(strip_domain(&qname, &domain), Some(&below[..]));
                if other != domain && !other.ends_with(&domain) {
                    prop_assert_eq!(strip_domain(&other, &domain), None);
                }
            }
        }
    }
}
