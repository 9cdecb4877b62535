//! Forwarding names outside the Consul domain to the configured `recursors`, as Consul
//! does: each in order, the next one when a recursor fails (no reply within
//! [`RECURSOR_TIMEOUT`], an unreadable reply, or an rcode other than NOERROR/NXDOMAIN).
//! The query goes out as the client sent it, over the client's transport, so the reply's
//! ID, flags and EDNS match what the client expects. All failing is the caller's SERVFAIL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::DnsError;

/// Consul's `recursor_timeout` default.
pub const RECURSOR_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses `ip`, `ip:port` or `[ipv6]:port`; port 53 when none is given.
pub fn parse_recursor(text: &str) -> Result<SocketAddr, DnsError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| DnsError::BadRecursor(text.to_string()))
}

/// The first usable reply to `query` from `recursors`, tried in order; `None` when every
/// one failed (each failure is logged at debug level).
pub async fn forward(recursors: &[SocketAddr], query: &[u8], datagram: bool) -> Option<Message> {
    for &addr in recursors {
        let exchange = async {
            let raw = if datagram {
                exchange_udp(addr, query).await?
            } else {
                exchange_tcp(addr, query).await?
            };
            let reply = Message::from_vec(&raw).map_err(|e| DnsError::Upstream {
                addr,
                reason: format!("undecodable reply: {e}"),
            })?;
            match reply.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => Ok(reply),
                code => Err(DnsError::Upstream {
                    addr,
                    reason: format!("answered {code}"),
                }),
            }
        };
        let result = tokio::time::timeout(RECURSOR_TIMEOUT, exchange)
            .await
            .unwrap_or(Err(DnsError::Upstream {
                addr,
                reason: format!("no reply within {RECURSOR_TIMEOUT:?}"),
            }));
        match result {
            Ok(reply) => return Some(reply),
            Err(error) => tracing::debug!(%error, "recursor failed, trying the next"),
        }
    }
    None
}

fn io_error(addr: SocketAddr) -> impl Fn(std::io::Error) -> DnsError {
    move |e| DnsError::Upstream {
        addr,
        reason: e.to_string(),
    }
}

/// One datagram out, the first datagram back with the query's ID (others are ignored:
/// stray or spoofed replies).
async fn exchange_udp(addr: SocketAddr, query: &[u8]) -> Result<Vec<u8>, DnsError> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io_error(addr))?;
    socket.connect(addr).await.map_err(io_error(addr))?;
    socket.send(query).await.map_err(io_error(addr))?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io_error(addr))?;
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One length-prefixed message each way on a fresh connection.
async fn exchange_tcp(addr: SocketAddr, query: &[u8]) -> Result<Vec<u8>, DnsError> {
    let len = u16::try_from(query.len()).map_err(|_| DnsError::Upstream {
        addr,
        reason: "query longer than 64 KiB".into(),
    })?;
    let mut stream = TcpStream::connect(addr).await.map_err(io_error(addr))?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await.map_err(io_error(addr))?;
    let reply_len = stream.read_u16().await.map_err(io_error(addr))?;
    let mut reply = vec![0u8; usize::from(reply_len)];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(io_error(addr))?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursor_addresses() {
        let p = |s: &str| parse_recursor(s).unwrap().to_string();
        assert_eq!(p("8.8.8.8"), "8.8.8.8:53");
        assert_eq!(p("127.0.0.1:5353"), "127.0.0.1:5353");
        assert_eq!(p("::1"), "[::1]:53");
        assert_eq!(p("[::1]"), "[::1]:53");
        assert_eq!(p("[::1]:5353"), "[::1]:5353");
        assert!(parse_recursor("dns.example.com").is_err());
        assert!(parse_recursor("1.2.3.4:x").is_err());
    }
}
