//! Building the resource records Consul answers with: addresses, SRV targets (including
//! the `<hex-ip>.addr.<dc>.<domain>` names), node-meta TXT and the zone's SOA. Pure
//! functions of catalog values; the lookups in `lookup.rs` decide which to send.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Consul's default `node_ttl` and `service_ttl`: answers are never cached, so a failing
/// instance disappears from clients at once.
pub const TTL: u32 = 0;

/// The zone's SOA, as Consul sends it: `ns.<domain> hostmaster.<domain> <serial> 3600
/// 600 86400 0`, the serial being the current Unix time.
pub fn soa(domain: &Name, serial: u32) -> Record {
    let under = |label: &str| {
        Name::from_ascii(label)
            .and_then(|n| n.append_domain(domain))
            .unwrap_or_else(|_| domain.clone())
    };
    let data = SOA::new(
        under("ns"),
        under("hostmaster"),
        serial,
        3600,
        600,
        86400,
        0,
    );
    Record::from_rdata(domain.clone(), TTL, RData::SOA(data))
}

/// Whether a question of type `qtype` asks for records of type `wanted`.
pub fn asks_for(qtype: RecordType, wanted: RecordType) -> bool {
    qtype == wanted || qtype == RecordType::ANY
}

/// The record for `address` named `owner`, if `qtype` asks for it: A for IPv4, AAAA for
/// IPv6, CNAME when the address is a host name (as Consul does). `None` when the type does
/// not match or the address is neither.
pub fn address(owner: &Name, address: &str, qtype: RecordType) -> Option<Record> {
    let data = match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if asks_for(qtype, RecordType::A) => RData::A(A(ip)),
        Ok(IpAddr::V6(ip)) if asks_for(qtype, RecordType::AAAA) => RData::AAAA(AAAA(ip)),
        Ok(_) => return None,
        Err(_) => {
            let address_question = matches!(
                qtype,
                RecordType::A | RecordType::AAAA | RecordType::CNAME | RecordType::ANY
            );
            if !address_question || address.is_empty() {
                return None;
            }
            let mut target = Name::from_ascii(address).ok()?;
            target.set_fqdn(true);
            RData::CNAME(CNAME(target))
        }
    };
    Some(Record::from_rdata(owner.clone(), TTL, data))
}

/// Node meta as Consul's TXT records: one `key=value` string each, or only the value for
/// keys prefixed `rfc1035-`.
pub fn node_meta_txt(owner: &Name, meta: &BTreeMap<String, String>) -> Vec<Record> {
    meta.iter()
        .map(|(k, v)| {
            let text = match k.strip_prefix("rfc1035-") {
                Some(_) => v.clone(),
                None => format!("{k}={v}"),
            };
            Record::from_rdata(owner.clone(), TTL, RData::TXT(TXT::new(vec![text])))
        })
        .collect()
}

/// `<node>.node.<dc>.<domain>`, the SRV target for an instance at its node's address;
/// `None` when the node name is not a valid DNS name.
pub fn node_target(node: &str, dc: &str, domain: &Name) -> Option<Name> {
    Name::from_ascii(format!("{node}.node.{dc}"))
        .and_then(|n| n.append_domain(domain))
        .ok()
}

/// `<hex-ip>.addr.<dc>.<domain>`, the SRV target for an instance with its own address.
pub fn addr_target(ip: IpAddr, dc: &str, domain: &Name) -> Option<Name> {
    Name::from_ascii(format!("{}.addr.{dc}", hex_ip(ip)))
        .and_then(|n| n.append_domain(domain))
        .ok()
}

/// An IP as Consul's `addr` label: 8 hex digits for IPv4, 32 for IPv6.
pub fn hex_ip(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    octets.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex_ip`]; `None` for anything but 8 or 32 hex digits.
pub fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || (hex.len() != 8 && hex.len() != 32) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        _ => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn hex_round_trips() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(hex_ip(v4), "c000020a");
        assert_eq!(parse_hex_ip("c000020a"), Some(v4));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(hex_ip(v6), "20010db8000000000000000000000001");
        assert_eq!(parse_hex_ip(&hex_ip(v6)), Some(v6));
        assert_eq!(parse_hex_ip("c00002"), None);
        assert_eq!(parse_hex_ip("+c00020a"), None);
        assert_eq!(parse_hex_ip("c00002éa"), None);
    }

    #[test]
    fn address_records_follow_the_question_type() {
        let owner = name("web.service.consul.");
        let a = address(&owner, "10.0.0.1", RecordType::A).unwrap();
        assert_eq!(a.data, RData::A(A(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(a.ttl, 0);
        assert!(address(&owner, "10.0.0.1", RecordType::AAAA).is_none());
        assert!(address(&owner, "::1", RecordType::A).is_none());
        assert!(matches!(
            address(&owner, "::1", RecordType::ANY).unwrap().data,
            RData::AAAA(_)
        ));
        let cname = address(&owner, "db.example.com", RecordType::A).unwrap();
        assert_eq!(cname.data, RData::CNAME(CNAME(name("db.example.com."))));
        assert!(address(&owner, "db.example.com", RecordType::MX).is_none());
        assert!(address(&owner, "", RecordType::A).is_none());
    }

    #[test]
    fn targets_and_soa() {
        let domain = name("consul.");
        assert_eq!(
            node_target("foo", "dc1", &domain),
            Some(name("foo.node.dc1.consul."))
        );
        assert_eq!(node_target("bad name..", "dc1", &domain), None);
        assert_eq!(
            addr_target("192.0.2.10".parse().unwrap(), "dc1", &domain),
            Some(name("c000020a.addr.dc1.consul."))
        );
        let RData::SOA(soa) = soa(&domain, 7).data else {
            panic!("not an SOA")
        };
        assert_eq!(soa.mname, name("ns.consul."));
        assert_eq!(soa.rname, name("hostmaster.consul."));
        assert_eq!(
            (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum),
            (7, 3600, 600, 86400, 0)
        );
    }

    #[test]
    fn node_meta_as_txt() {
        let meta = BTreeMap::from([
            ("rack".to_string(), "r1".to_string()),
            ("rfc1035-raw".to_string(), "v=1".to_string()),
        ]);
        let txt = node_meta_txt(&name("n.node.consul."), &meta);
        let texts: Vec<String> = txt
            .iter()
            .map(|r| match &r.data {
                RData::TXT(t) => String::from_utf8(t.txt_data[0].to_vec()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["rack=r1", "v=1"]);
    }
}
