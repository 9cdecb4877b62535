//! DNS queries over real sockets for the tests: build a query, exchange it over UDP or
//! TCP with a deadline, read the A records of the answer.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Longest wait for one reply (loopback answers in milliseconds).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);

pub fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        m.set_edns(edns);
    }
    m
}

pub async fn udp_exchange(server: SocketAddr, q: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&q.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(REPLY_DEADLINE, socket.recv(&mut buf))
        .await
        .expect("a UDP reply in time")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).expect("a well-formed reply");
    assert_eq!(reply.metadata.id, q.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

pub async fn tcp_exchange(server: SocketAddr, q: &Message) -> Message {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let bytes = q.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).expect("a well-formed reply")
    };
    tokio::time::timeout(REPLY_DEADLINE, exchange)
        .await
        .expect("a TCP reply in time")
}

pub fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(A(ip)) => Some(ip),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}
