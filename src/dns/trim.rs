//! Fitting an answer to what the client can receive, as Consul's `trimUDPResponse` and
//! `trimTCPResponse` do: a UDP client without EDNS0 (or with a buffer of 512 bytes or
//! less) gets at most `udp_answer_limit` answers (never more than 8), then whole answers
//! are dropped until the reply fits its buffer (512 bytes, the EDNS0 size, or 64 KiB on
//! TCP). Additional records follow the answers they belong to. Consul leaves the TC bit
//! clear here (its `enable_truncate` defaults to false), so do we: clients get a usable
//! subset instead of a retry over TCP.
//!
//! Pure: the caller passes a function measuring the encoded reply.

use std::collections::BTreeSet;

use hickory_proto::rr::{Name, RData, Record};

use super::lookup::Answer;

/// RFC 1035's UDP payload limit, for clients without EDNS0.
pub const DEFAULT_UDP_SIZE: usize = 512;
/// The largest DNS message (TCP's two-byte length prefix).
pub const MAX_TCP_SIZE: usize = 65535;
/// Consul's `maxUDPAnswerLimit`: the hard cap on answers in a 512-byte UDP reply.
pub const MAX_UDP_ANSWERS: usize = 8;

/// What one reply may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_bytes: usize,
    /// A cap on the answer count, before the size cut.
    pub max_answers: Option<usize>,
}

impl Budget {
    /// The budget for a request over UDP (`datagram`) or TCP, with the client's EDNS0
    /// buffer size if it sent one.
    pub fn for_request(datagram: bool, edns_payload: Option<u16>, udp_answer_limit: usize) -> Self {
        if !datagram {
            return Budget {
                max_bytes: MAX_TCP_SIZE,
                max_answers: None,
            };
        }
        let max_bytes =
            edns_payload.map_or(DEFAULT_UDP_SIZE, |p| usize::from(p).max(DEFAULT_UDP_SIZE));
        Budget {
            max_bytes,
            max_answers: (max_bytes == DEFAULT_UDP_SIZE)
                .then_some(udp_answer_limit.min(MAX_UDP_ANSWERS)),
        }
    }
}

/// Cuts `answer` to `budget`, measuring encodings with `size`. Returns whether anything
/// was dropped.
pub fn trim(answer: &mut Answer, budget: Budget, size: impl Fn(&Answer) -> usize) -> bool {
    let total = answer.answers.len();
    if let Some(max) = budget.max_answers {
        if answer.answers.len() > max {
            cut(answer, max);
        }
    }
    if size(answer) > budget.max_bytes {
        // The most answers that fit: size grows with the count, so search for it.
        let full = answer.clone();
        let (mut fits, mut too_many) = (0, full.answers.len());
        while too_many - fits > 1 {
            let mid = (fits + too_many) / 2;
            let mut probe = full.clone();
            cut(&mut probe, mid);
            if size(&probe) <= budget.max_bytes {
                fits = mid;
            } else {
                too_many = mid;
            }
        }
        cut(answer, fits);
    }
    answer.answers.len() < total
}

/// Keeps the first `keep` answers and the additional records they still refer to.
fn cut(answer: &mut Answer, keep: usize) {
    answer.answers.truncate(keep);
    sync_additionals(answer);
}

/// Consul's `syncExtra`: an additional record stays only while a remaining answer names
/// it (as an SRV target or as its owner), following CNAMEs among the additionals.
fn sync_additionals(answer: &mut Answer) {
    let mut wanted: BTreeSet<Name> = BTreeSet::new();
    for record in &answer.answers {
        wanted.insert(record.name.to_lowercase());
        if let RData::SRV(srv) = &record.data {
            wanted.insert(srv.target.to_lowercase());
        }
    }
    loop {
        let before = wanted.len();
        for record in &answer.additionals {
            if let RData::CNAME(target) = &record.data {
                if wanted.contains(&record.name.to_lowercase()) {
                    wanted.insert(target.0.to_lowercase());
                }
            }
        }
        if wanted.len() == before {
            break;
        }
    }
    let keep = |r: &Record| wanted.contains(&r.name.to_lowercase());
    answer.additionals.retain(keep);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::{A, SRV};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// `n` SRV answers for `web.service.consul.`, each with its target's A record.
    fn srv_answer(n: u8) -> Answer {
        let mut answer = Answer::new(ResponseCode::NoError);
        for i in 0..n {
            let target = name(&format!("node{i}.node.dc1.consul."));
            let srv = SRV::new(1, 1, 8000 + u16::from(i), target.clone());
            answer.answers.push(Record::from_rdata(
                name("web.service.consul."),
                0,
                RData::SRV(srv),
            ));
            answer.additionals.push(Record::from_rdata(
                target,
                0,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
            ));
        }
        answer
    }

    /// A stand-in for the encoded size: 100 bytes a record.
    fn hundred_each(a: &Answer) -> usize {
        100 * (a.answers.len() + a.authorities.len() + a.additionals.len())
    }

    #[test]
    fn budgets() {
        let udp = Budget::for_request(true, None, 3);
        assert_eq!(udp.max_bytes, 512);
        assert_eq!(udp.max_answers, Some(3));
        // A limit above Consul's hard cap is capped.
        assert_eq!(Budget::for_request(true, None, 20).max_answers, Some(8));
        // EDNS0: the client's buffer, no count cut; below 512 counts as 512.
        let edns = Budget::for_request(true, Some(4096), 3);
        assert_eq!((edns.max_bytes, edns.max_answers), (4096, None));
        assert_eq!(
            Budget::for_request(true, Some(100), 3),
            Budget {
                max_bytes: 512,
                max_answers: Some(3)
            }
        );
        let tcp = Budget::for_request(false, None, 3);
        assert_eq!((tcp.max_bytes, tcp.max_answers), (65535, None));
    }

    #[test]
    fn udp_without_edns_keeps_the_answer_limit_and_matching_extras() {
        let mut answer = srv_answer(6);
        let trimmed = trim(&mut answer, Budget::for_request(true, None, 3), |_| 0);
        assert!(trimmed);
        assert_eq!(answer.answers.len(), 3);
        assert_eq!(answer.additionals.len(), 3);
        for (srv, extra) in answer.answers.iter().zip(&answer.additionals) {
            let RData::SRV(srv) = &srv.data else {
                panic!("not SRV")
            };
            assert_eq!(srv.target, extra.name);
        }
    }

    #[test]
    fn size_cut_drops_whole_answers_until_it_fits() {
        // 10 answers + 10 extras at 100 bytes each = 2000; 1000 bytes fit 5 pairs.
        let mut answer = srv_answer(10);
        let budget = Budget {
            max_bytes: 1000,
            max_answers: None,
        };
        assert!(trim(&mut answer, budget, hundred_each));
        assert_eq!(answer.answers.len(), 5);
        assert_eq!(answer.additionals.len(), 5);
        assert!(hundred_each(&answer) <= 1000);
        // Nothing to do when it already fits.
        let mut small = srv_answer(2);
        assert!(!trim(&mut small, budget, hundred_each));
        assert_eq!(small, srv_answer(2));
    }

    #[test]
    fn real_encoding_fits_512_bytes() {
        // Forty A answers without EDNS over UDP: 3 survive and the reply is small.
        let mut answer = Answer::new(ResponseCode::NoError);
        for i in 0..40 {
            answer.answers.push(Record::from_rdata(
                name("web.service.consul."),
                0,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
            ));
        }
        let encoded = |a: &Answer| {
            let mut m = hickory_proto::op::Message::response(1, hickory_proto::op::OpCode::Query);
            m.answers = a.answers.clone();
            m.additionals = a.additionals.clone();
            m.to_vec().unwrap().len()
        };
        let mut udp = answer.clone();
        trim(&mut udp, Budget::for_request(true, None, 3), encoded);
        assert_eq!(udp.answers.len(), 3);
        // With a 512-byte limit but no count cap, the size alone decides.
        let mut by_size = answer.clone();
        let budget = Budget {
            max_bytes: 512,
            max_answers: None,
        };
        trim(&mut by_size, budget, encoded);
        assert!(by_size.answers.len() > 3 && by_size.answers.len() < 40);
        assert!(encoded(&by_size) <= 512);
        // TCP takes them all.
        let mut tcp = answer.clone();
        assert!(!trim(
            &mut tcp,
            Budget::for_request(false, None, 3),
            encoded
        ));
        assert_eq!(tcp.answers.len(), 40);
    }

    #[test]
    fn cname_chains_in_extras_are_kept() {
        let mut answer = Answer::new(ResponseCode::NoError);
        let target = name("a.node.dc1.consul.");
        answer.answers.push(Record::from_rdata(
            name("web.service.consul."),
            0,
            RData::SRV(SRV::new(1, 1, 80, target.clone())),
        ));
        answer.additionals.push(Record::from_rdata(
            target,
            0,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(name("host.example."))),
        ));
        answer.additionals.push(Record::from_rdata(
            name("host.example."),
            0,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ));
        answer.additionals.push(Record::from_rdata(
            name("stray.example."),
            0,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ));
        cut(&mut answer, 1);
        assert_eq!(answer.additionals.len(), 2);
    }
}
