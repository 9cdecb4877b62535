//! The request handler hickory's server loop calls for every query: decides between the
//! Consul domain (`lookup.rs`, fitted to the client by `trim.rs`), the recursors
//! (`recursor.rs`) and REFUSED, and writes the one reply. Malformed or unsupported
//! requests get an error rcode (FORMERR, NOTIMP, BADVERS), never a panic; lookups that
//! fail inside the service layer get SERVFAIL and are logged once here.

use std::iter;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::sync::Semaphore;

use super::lookup::{Answer, Zone};
use super::name::{self, labels_of, strip_domain};
use super::recursor;
use super::trim::{trim, Budget};

/// Requests answered at once; beyond it the server sheds load with SERVFAIL rather than
/// queueing lookups without bound (hickory spawns a task per UDP datagram).
pub const MAX_IN_FLIGHT: usize = 1024;

/// The DNS front end of one agent.
pub struct DnsHandler {
    pub(super) zone: Zone,
    /// `zone.domain`'s labels, lower-case, for matching questions.
    pub(super) domain_labels: Vec<String>,
    pub(super) recursors: Vec<SocketAddr>,
    pub(super) udp_answer_limit: usize,
    pub(super) in_flight: Arc<Semaphore>,
}

/// The OPT record for the reply when the request had one: our EDNS version 0 and the
/// client's buffer size (at least 512), as Consul echoes it.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns
    })
}

/// The encoded length of the reply to `request` holding `answer`, for `trim`: encoded
/// by hickory's own response path, so the count matches what will be sent (its name
/// compression differs from `Message`'s). Too large for one message: `usize::MAX`.
fn encoded_len(request: &Request, answer: &Answer, edns: Option<&Edns>) -> usize {
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    let message = MessageResponseBuilder::new(&request.queries, edns).build(
        Metadata::response_from_request(&request.metadata),
        &answer.answers,
        &answer.authorities,
        iter::empty(),
        &answer.additionals,
    );
    match message.destructive_emit(&mut encoder) {
        Ok(info) if !info.truncation => buf.len(),
        _ => usize::MAX,
    }
}

/// Sends `message`; a reply that could not be sent is logged and reported as SERVFAIL.
async fn send<'a, R: ResponseHandler>(
    mut response: R,
    request: &Request,
    message: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
    >,
) -> ResponseInfo {
    match response.send_response(message).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, src = %request.src(), "DNS reply not sent");
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

impl DnsHandler {
    /// A reply with no records and `rcode`.
    async fn error<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
        edns: Option<&Edns>,
        rcode: ResponseCode,
    ) -> ResponseInfo {
        let mut message =
            MessageResponseBuilder::new(&request.queries, edns).error_msg(&request.metadata, rcode);
        message.metadata_mut().recursion_available = !self.recursors.is_empty();
        send(response, request, message).await
    }

    /// A name inside the Consul domain (`below` are its labels under the domain).
    async fn answer_in_zone<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
        edns: Option<&Edns>,
        query: &Query,
        below: &[String],
    ) -> ResponseInfo {
        let qtype = query.query_type();
        let question = name::parse(below, qtype == RecordType::SRV);
        let mut answer = match self.zone.answer(query.name(), &question, qtype).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, name = %query.name(), "DNS lookup failed");
                Answer::new(ResponseCode::ServFail)
            }
        };
        let budget = Budget::for_request(
            request.protocol().is_datagram(),
            request.edns.as_ref().map(Edns::max_payload),
            self.udp_answer_limit,
        );
        trim(&mut answer, budget, |a| encoded_len(request, a, edns));
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = !self.recursors.is_empty();
        metadata.response_code = answer.rcode;
        let message = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            &answer.answers,
            &answer.authorities,
            iter::empty(),
            &answer.additionals,
        );
        send(response, request, message).await
    }

    /// A name outside the domain, with recursors configured.
    async fn recurse<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let datagram = request.protocol().is_datagram();
        let Some(reply) = recursor::forward(&self.recursors, request.as_slice(), datagram).await
        else {
            return self
                .error(request, response, edns, ResponseCode::ServFail)
                .await;
        };
        let mut metadata = reply.metadata;
        metadata.id = request.metadata.id;
        metadata.message_type = hickory_proto::op::MessageType::Response;
        let message = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            &reply.answers,
            &reply.authorities,
            iter::empty(),
            &reply.additionals,
        );
        send(response, request, message).await
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let edns = response_edns(request);
        let edns = edns.as_ref();
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return self
                .error(request, response, edns, ResponseCode::BADVERS)
                .await;
        }
        if request.metadata.op_code != OpCode::Query {
            return self
                .error(request, response, edns, ResponseCode::NotImp)
                .await;
        }
        let Ok(info) = request.request_info() else {
            return self
                .error(request, response, edns, ResponseCode::FormErr)
                .await;
        };
        let Ok(_permit) = self.in_flight.try_acquire() else {
            tracing::debug!("DNS request shed: {MAX_IN_FLIGHT} already in flight");
            return self
                .error(request, response, edns, ResponseCode::ServFail)
                .await;
        };
        let query = info.query.original();
        let labels = labels_of(query.name());
        match strip_domain(&labels, &self.domain_labels) {
            Some(below) => {
                self.answer_in_zone(request, response, edns, query, below)
                    .await
            }
            None if self.recursors.is_empty() => {
                self.error(request, response, edns, ResponseCode::Refused)
                    .await
            }
            None => self.recurse(request, response, edns).await,
        }
    }
}

#[cfg(test)]
mod proptests {
    //! Whole DNS messages: arbitrary bytes through hickory's request decoder and then
    //! everything the handler does before it reads the catalog (EDNS, the one-question
    //! check, domain matching, name parsing, the size budget, the encoded length of an
    //! empty reply). The catalog lookups themselves need a server (tests/dns.rs).

    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::Name;
    use hickory_server::net::xfer::Protocol;
    use proptest::prelude::*;

    use super::*;
    use crate::config::arbitrary;

    fn src() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5353))
    }

    /// The handler's path for one request, minus the catalog: what it would decide.
    fn classify(request: &Request) -> Option<name::Question> {
        let edns = response_edns(request);
        let _ = Budget::for_request(
            request.protocol().is_datagram(),
            request.edns.as_ref().map(Edns::max_payload),
            3,
        );
        let _ = encoded_len(request, &Answer::new(ResponseCode::NXDomain), edns.as_ref());
        let info = request.request_info().ok()?;
        let query = info.query.original();
        let labels = labels_of(query.name());
        let domain = vec!["consul".to_string()];
        let below = strip_domain(&labels, &domain)?;
        Some(name::parse(below, query.query_type() == RecordType::SRV))
    }

    /// A query message for `labels` (raw bytes, any case) of type `qtype`.
    fn query(labels: &[Vec<u8>], qtype: RecordType, id: u16, edns: Option<u16>) -> Option<Vec<u8>> {
        let mut name = Name::from_labels(labels.iter().map(|l| l.as_slice())).ok()?;
        name.set_fqdn(true);
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name, qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().ok()
    }

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn any_bytes_decode_or_are_refused(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..600),
                // A valid header and question count, then junk.
                prop::collection::vec(any::<u8>(), 0..200).prop_map(|tail| {
                    let mut b = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
                    b.extend(tail);
                    b
                }),
            ],
            tcp in any::<bool>(),
        ) {
            let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
            if let Ok(request) = Request::from_bytes(bytes, src(), protocol) {
                let _ = classify(&request);
            }
        }

        #[test]
        fn questions_survive_the_wire(
            below in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 0..5),
            upper in any::<bool>(),
            srv in any::<bool>(),
            id in any::<u16>(),
            edns in prop::option::of(any::<u16>()),
        ) {
            let mut labels = below.clone();
            labels.push(if upper { b"CONSUL".to_vec() } else { b"consul".to_vec() });
            let qtype = if srv { RecordType::SRV } else { RecordType::A };
            let Some(bytes) = query(&labels, qtype, id, edns) else {
                return Ok(()); // a name hickory will not encode (too long)
            };
            let request = Request::from_bytes(bytes, src(), Protocol::Udp).unwrap();
            prop_assert_eq!(request.metadata.id, id);
            let want: Vec<String> = below
                .iter()
                .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
                .collect();
            let q = classify(&request).expect("inside the domain");
            prop_assert_eq!(q, name::parse(&want, srv));
        }
    }
}
