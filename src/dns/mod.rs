//! Consul's DNS interface (port 8600, UDP and TCP): `<node>.node.consul`,
//! `[<tag>.]<service>.service.consul`, the RFC 2782 `_<service>._tcp` SRV forms and
//! `<hex-ip>.addr.consul`, answered from the catalog; other names forwarded to the
//! configured recursors, or REFUSED. See section 13 of the Consul HTTP API spec.
//!
//! A tour, in the order a query travels:
//! - hickory's [`hickory_server::Server`] owns the sockets (one task per UDP datagram,
//!   one per TCP connection) and calls [`handler::DnsHandler`] per request.
//! - [`name`] parses a question into what it asks for (pure, unit-tested).
//! - [`lookup`] reads the catalog through `crate::service` (stale reads: DNS is served
//!   by any server from its own state) and builds the records with [`records`].
//! - [`trim`] fits the answer to the client (UDP answer limit, 512 bytes or the EDNS0
//!   size, 64 KiB on TCP).
//! - [`recursor`] forwards names outside the domain.
//!
//! Like the other front ends it decodes, calls `service/`, encodes: it never reads
//! storage or raft directly and adds no meaning of its own beyond Consul's DNS rules.
//! Not served (yet): PTR for `in-addr.arpa`, prepared queries (`.query`), Connect and
//! ingress names, `alt_domain`, per-service TTLs, NS records for the servers.

pub mod handler;
pub mod lookup;
pub mod name;
pub mod records;
pub mod recursor;
pub mod trim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::service::Api;

/// A TCP client silent for this long is disconnected (hickory's per-connection timeout).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies queued per TCP connection before the connection task waits for the socket.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Consul's `dns_config` subset Rostra honours, plus the agent settings DNS needs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Consul's `domain`: the zone answered from the catalog (`consul.`).
    pub domain: String,
    /// This agent's datacenter: the one `<dc>` label answered; others are NXDOMAIN.
    pub datacenter: String,
    /// Upstream servers (`ip` or `ip:port`, port 53 by default) for names outside the
    /// domain, tried in order. Empty: such names are REFUSED.
    pub recursors: Vec<String>,
    /// Consul's `udp_answer_limit`: answers in a UDP reply to a client without EDNS0.
    pub udp_answer_limit: usize,
    /// Consul's `only_passing`: leave out instances with warning checks too.
    pub only_passing: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            domain: "consul.".into(),
            datacenter: "dc1".into(),
            recursors: Vec::new(),
            udp_answer_limit: 3,
            only_passing: false,
        }
    }
}

/// What can go wrong in the DNS front end.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid DNS domain {domain:?}: {reason}")]
    BadDomain { domain: String, reason: String },
    #[error("invalid recursor address {0:?} (want ip or ip:port)")]
    BadRecursor(String),
    #[error("recursor {addr}: {reason}")]
    Upstream { addr: SocketAddr, reason: String },
    #[error("DNS server: {0}")]
    Server(String),
}

impl From<DnsError> for std::io::Error {
    fn from(e: DnsError) -> Self {
        let kind = match e {
            DnsError::BadDomain { .. } | DnsError::BadRecursor(_) => {
                std::io::ErrorKind::InvalidInput
            }
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// `consul` / `consul.` / `Consul.` → the fully qualified, lower-case name `consul.`.
fn domain_name(domain: &str) -> Result<Name, DnsError> {
    let trimmed = domain.trim_matches('.').to_ascii_lowercase();
    let bad = |reason: String| DnsError::BadDomain {
        domain: domain.to_string(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(bad("empty".into()));
    }
    Name::from_ascii(format!("{trimmed}.")).map_err(|e| bad(e.to_string()))
}

impl handler::DnsHandler {
    /// Checks `config` and builds the handler.
    pub fn new(service: Api, config: DnsConfig) -> Result<Self, DnsError> {
        let domain = domain_name(&config.domain)?;
        let recursors = config
            .recursors
            .iter()
            .map(|r| recursor::parse_recursor(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(handler::DnsHandler {
            domain_labels: name::labels_of(&domain),
            zone: lookup::Zone {
                service,
                domain,
                datacenter: config.datacenter,
                only_passing: config.only_passing,
            },
            recursors,
            udp_answer_limit: config.udp_answer_limit,
            in_flight: Arc::new(Semaphore::new(handler::MAX_IN_FLIGHT)),
        })
    }
}

/// Serves DNS on `udp` and `tcp` until `shutdown` completes.
///
/// Fails at once with `InvalidInput` for a bad domain or recursor; otherwise returns
/// `Ok` after shutdown, or the error that stopped a socket early.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    service: Api,
    config: DnsConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let handler = handler::DnsHandler::new(service, config)?;
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    let stop = server.shutdown_token().clone();
    let relay = async move {
        shutdown.cancelled().await;
        stop.cancel();
        // The server's own tasks end the select once they have stopped.
        std::future::pending::<std::convert::Infallible>().await
    };
    let done = tokio::select! {
        done = server.block_until_done() => done,
        never = relay => match never {},
    };
    done.map_err(|e| DnsError::Server(e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        for d in ["consul", "consul.", "Consul.", ".consul."] {
            assert_eq!(domain_name(d).unwrap().to_ascii(), "consul.");
        }
        assert_eq!(domain_name("my.Domain").unwrap().to_ascii(), "my.domain.");
        assert!(domain_name("").is_err());
        assert!(domain_name(".").is_err());
    }

    #[test]
    fn defaults_are_consuls() {
        let c = DnsConfig::default();
        assert_eq!(c.domain, "consul.");
        assert_eq!(c.datacenter, "dc1");
        assert!(c.recursors.is_empty());
        assert_eq!(c.udp_answer_limit, 3);
        assert!(!c.only_passing);
    }
}
