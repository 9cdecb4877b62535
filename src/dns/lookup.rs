//! Answers for names inside the Consul domain, read from the catalog through
//! `crate::service` only (stale reads, as Consul's `allow_stale` default: any server
//! answers from its own state without a round trip to the leader).
//!
//! Mirrors Consul's node and service lookups: nodes by name whatever their health;
//! services as their healthy instances (none with a critical check, node- or
//! service-level; warning ones unless `only_passing`), shuffled; SRV only when asked, with
//! the targets' addresses in the additional section; NXDOMAIN with the SOA for names that
//! do not exist, NOERROR with the SOA for names without records of the asked type. It does
//! not touch the wire format or size limits (`handler.rs`, `trim.rs`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

use super::name::Question;
use super::records::{self, asks_for, TTL};
use crate::service::catalog::ServiceEntry;
use crate::service::{Api, Consistency, QueryOptions, ServiceError};
use crate::state::catalog::{CheckStatus, Node};

/// A reply before encoding: the response code and the three record sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    pub fn new(rcode: ResponseCode) -> Self {
        Answer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// The Consul domain served from one datacenter's catalog.
pub struct Zone {
    pub service: Api,
    /// Fully qualified, lower-case (`consul.`).
    pub domain: Name,
    /// This agent's datacenter, as configured; compared case-insensitively.
    pub datacenter: String,
    /// Consul's `dns_config.only_passing`: leave out instances with warning checks too.
    pub only_passing: bool,
}

fn stale() -> QueryOptions {
    QueryOptions::with_consistency(Consistency::Stale)
}

/// The address clients should use for an instance: its own, or its node's.
fn instance_address(e: &ServiceEntry) -> &str {
    if e.service.address.is_empty() {
        &e.node.address
    } else {
        &e.service.address
    }
}

impl Zone {
    /// Answers `question` (parsed from `qname`) for records of type `qtype`. Records are
    /// named `qname` as the client spelled it.
    pub async fn answer(
        &self,
        qname: &Name,
        question: &Question,
        qtype: RecordType,
    ) -> Result<Answer, ServiceError> {
        if question
            .datacenter()
            .is_some_and(|dc| !dc.eq_ignore_ascii_case(&self.datacenter))
        {
            // One datacenter only: any other is a name that does not exist.
            return Ok(self.nxdomain());
        }
        match question {
            Question::Apex if asks_for(qtype, RecordType::SOA) => {
                let mut answer = Answer::new(ResponseCode::NoError);
                answer.answers.push(self.soa());
                Ok(answer)
            }
            Question::Apex => Ok(self.nodata()),
            Question::Node { name, .. } => self.node(qname, name, qtype).await,
            Question::Service { name, tag, .. } => {
                self.service(qname, name, tag.as_deref(), qtype).await
            }
            Question::Addr { ip, .. } => Ok(self.addr(qname, *ip, qtype)),
            Question::Unknown => Ok(self.nxdomain()),
        }
    }

    /// NXDOMAIN with the SOA in the authority section (for negative caching).
    pub fn nxdomain(&self) -> Answer {
        let mut answer = Answer::new(ResponseCode::NXDomain);
        answer.authorities.push(self.soa());
        answer
    }

    /// The name exists but has no records of the asked type.
    fn nodata(&self) -> Answer {
        let mut answer = Answer::new(ResponseCode::NoError);
        answer.authorities.push(self.soa());
        answer
    }

    fn soa(&self) -> Record {
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        records::soa(&self.domain, serial)
    }

    fn found(&self, answer: Answer) -> Answer {
        if answer.answers.is_empty() {
            self.nodata()
        } else {
            answer
        }
    }

    async fn node(
        &self,
        qname: &Name,
        name: &str,
        qtype: RecordType,
    ) -> Result<Answer, ServiceError> {
        let Some(node) = self.find_node(name).await? else {
            return Ok(self.nxdomain());
        };
        let mut answer = Answer::new(ResponseCode::NoError);
        answer
            .answers
            .extend(records::address(qname, &node.address, qtype));
        let meta = records::node_meta_txt(qname, &node.meta);
        if asks_for(qtype, RecordType::TXT) {
            answer.answers.extend(meta);
        } else if !answer.answers.is_empty() {
            // Consul's `enable_additional_node_meta_txt`.
            answer.additionals.extend(meta);
        }
        Ok(self.found(answer))
    }

    /// The node named `name`, matched exactly first, then ignoring case (DNS names are
    /// case-insensitive, catalog keys are not).
    async fn find_node(&self, name: &str) -> Result<Option<Node>, ServiceError> {
        let opts = stale();
        if let (_, Some((node, _))) = self.service.catalog_node(name, &opts).await? {
            return Ok(Some(node));
        }
        let (_, nodes) = self.service.catalog_nodes(&opts).await?;
        Ok(nodes
            .into_iter()
            .find(|n| n.name.eq_ignore_ascii_case(name)))
    }

    async fn service(
        &self,
        qname: &Name,
        name: &str,
        tag: Option<&str>,
        qtype: RecordType,
    ) -> Result<Answer, ServiceError> {
        let mut entries = self.healthy_instances(name, tag).await?;
        if entries.is_empty() {
            return Ok(self.nxdomain());
        }
        entries.shuffle(&mut rand::rng());
        let mut answer = Answer::new(ResponseCode::NoError);
        if qtype == RecordType::SRV {
            for entry in &entries {
                self.srv(qname, entry, &mut answer);
            }
        } else {
            // One record per address: several instances may share one (Consul dedups too).
            let mut seen = BTreeSet::new();
            for entry in &entries {
                let address = instance_address(entry);
                if seen.insert(address) {
                    answer
                        .answers
                        .extend(records::address(qname, address, qtype));
                }
            }
        }
        Ok(self.found(answer))
    }

    /// Instances of `name` (case-insensitively) carrying `tag` (case-insensitively), with
    /// no critical check and, under `only_passing`, no warning either.
    async fn healthy_instances(
        &self,
        name: &str,
        tag: Option<&str>,
    ) -> Result<Vec<ServiceEntry>, ServiceError> {
        let opts = stale();
        let svc = &self.service;
        let (_, mut entries) = svc
            .health_service(name, &[], self.only_passing, &opts)
            .await?;
        if entries.is_empty() {
            // The question is lower-cased; the catalog may spell the service otherwise.
            let (_, names) = svc.catalog_services(&opts).await?;
            for other in names
                .keys()
                .filter(|n| n.as_str() != name && n.eq_ignore_ascii_case(name))
            {
                let (_, more) = svc
                    .health_service(other, &[], self.only_passing, &opts)
                    .await?;
                entries.extend(more);
            }
        }
        entries.retain(|e| {
            e.status() != CheckStatus::Critical
                && tag.is_none_or(|t| e.service.tags.iter().any(|s| s.eq_ignore_ascii_case(t)))
        });
        Ok(entries)
    }

    /// One SRV record for `entry`, and its target's address in the additional section.
    fn srv(&self, qname: &Name, entry: &ServiceEntry, answer: &mut Answer) {
        let address = instance_address(entry);
        let (target, extra) = match address.parse::<IpAddr>() {
            Ok(ip) => {
                let target = if address == entry.node.address {
                    records::node_target(&entry.node.name, &self.datacenter, &self.domain)
                } else {
                    records::addr_target(ip, &self.datacenter, &self.domain)
                };
                let Some(target) = target else { return };
                let extra = records::address(&target, address, RecordType::ANY);
                (target, extra)
            }
            // A host name is its own target; clients resolve it themselves.
            Err(_) => match Name::from_ascii(address) {
                Ok(mut target) if !address.is_empty() => {
                    target.set_fqdn(true);
                    (target, None)
                }
                _ => return,
            },
        };
        let weights = entry.service.weights;
        let weight = match entry.status() {
            CheckStatus::Warning => weights.warning,
            _ => weights.passing,
        };
        let weight = u16::try_from(weight).unwrap_or(u16::MAX);
        let srv = SRV::new(1, weight, entry.service.port, target);
        answer
            .answers
            .push(Record::from_rdata(qname.clone(), TTL, RData::SRV(srv)));
        if let Some(extra) = extra {
            if !answer.additionals.contains(&extra) {
                answer.additionals.push(extra);
            }
        }
    }

    fn addr(&self, qname: &Name, ip: IpAddr, qtype: RecordType) -> Answer {
        let mut answer = Answer::new(ResponseCode::NoError);
        answer
            .answers
            .extend(records::address(qname, &ip.to_string(), qtype));
        self.found(answer)
    }
}
