//! The DNS interface over real sockets: an in-process dev server, catalog entries
//! registered through the service layer, `rostra::dns::serve` on ephemeral UDP and TCP
//! ports, and queries built with hickory-proto.

mod common;

use common::dns::{a_records, query, tcp_exchange, udp_exchange};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rostra::dns::{serve, DnsConfig};
use rostra::server::Server;
use rostra::state::catalog::{
    CheckSpec, CheckStatus, HealthCheck, Node, Registration, ServiceInstance, Weights,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use common::dns::REPLY_DEADLINE;

/// A DNS front end on ephemeral loopback ports.
struct Dns {
    udp: SocketAddr,
    tcp: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Dns {
    async fn start(server: &Server, config: DnsConfig) -> Dns {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        // Bound before spawning: queries sent at once wait in the socket buffers.
        let task = tokio::spawn(serve(
            udp,
            tcp,
            server.service.clone(),
            config,
            shutdown.clone(),
        ));
        Dns {
            udp: udp_addr,
            tcp: tcp_addr,
            shutdown,
            task,
        }
    }

    async fn udp(&self, name: &str, qtype: RecordType) -> Message {
        udp_exchange(self.udp, &query(name, qtype, None)).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(REPLY_DEADLINE, self.task)
            .await
            .expect("DNS server stops after shutdown")
            .unwrap();
        result.expect("DNS server ends cleanly");
    }
}

fn srv_records(m: &Message) -> Vec<SRV> {
    let mut srvs: Vec<SRV> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    srvs.sort_by_key(|s| s.port);
    srvs
}

fn additional_a(m: &Message, owner: &str) -> Option<IpAddr> {
    let owner = Name::from_ascii(owner).unwrap();
    m.additionals.iter().find_map(|r: &Record| match r.data {
        RData::A(A(ip)) if r.name == owner => Some(IpAddr::V4(ip)),
        _ => None,
    })
}

fn check(id: &str, service_id: &str, status: CheckStatus) -> HealthCheck {
    HealthCheck {
        node: String::new(),
        check_id: id.into(),
        name: id.into(),
        status,
        notes: String::new(),
        output: String::new(),
        service_id: service_id.into(),
        spec: CheckSpec::default(),
        create_index: 0,
        modify_index: 0,
    }
}

/// Registers `node` at `address` with one instance of `service` and `checks`.
async fn register(
    server: &Server,
    node: &str,
    address: &str,
    service: Option<ServiceInstance>,
    checks: Vec<HealthCheck>,
) {
    let reg = Registration {
        node: Node {
            name: node.into(),
            address: address.into(),
            datacenter: "dc1".into(),
            ..Default::default()
        },
        skip_node_update: false,
        service,
        checks,
    };
    server
        .service
        .catalog_register(reg)
        .await
        .expect("registered");
}

fn instance(id: &str, name: &str, port: u16, tags: &[&str], address: &str) -> ServiceInstance {
    ServiceInstance {
        id: id.into(),
        name: name.into(),
        port,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        address: address.into(),
        weights: Weights {
            passing: 10,
            warning: 3,
        },
        ..Default::default()
    }
}

/// `web` on four nodes: node-a passing (tags primary, v1), node-b warning with its own
/// address, node-c with a critical service check, node-d with a critical node check;
/// `many` on ten passing nodes; node `Mixed-Case` on IPv6.
async fn populate(server: &Server) {
    let web = |id, port, tags: &[&str], addr| Some(instance(id, "web", port, tags, addr));
    register(
        server,
        "node-a",
        "10.0.0.1",
        web("web-a", 8080, &["primary", "v1"], ""),
        vec![],
    )
    .await;
    register(
        server,
        "node-b",
        "10.0.0.2",
        web("web-b", 8081, &["secondary"], "192.0.2.10"),
        vec![check("web-b-ok", "web-b", CheckStatus::Warning)],
    )
    .await;
    register(
        server,
        "node-c",
        "10.0.0.3",
        web("web-c", 8082, &["primary"], ""),
        vec![check("web-c-down", "web-c", CheckStatus::Critical)],
    )
    .await;
    register(
        server,
        "node-d",
        "10.0.0.4",
        web("web-d", 8083, &["primary"], ""),
        vec![check("serfHealth", "", CheckStatus::Critical)],
    )
    .await;
    for i in 0..10u8 {
        let svc = instance(&format!("many-{i}"), "many", 9000 + u16::from(i), &[], "");
        register(
            server,
            &format!("many-{i}"),
            &format!("10.1.0.{i}"),
            Some(svc),
            vec![],
        )
        .await;
    }
    register(server, "Mixed-Case", "2001:db8::5", None, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_the_catalog() {
    let (server, _dir) = common::dev_server().await;
    populate(&server).await;
    let dns = Dns::start(&server, DnsConfig::default()).await;

    // Node A record, TTL 0, authoritative.
    let r = dns.udp("node-a.node.consul.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert!(!r.metadata.recursion_available);
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(r.answers[0].ttl, 0);
    assert_eq!(
        r.answers[0].name,
        Name::from_ascii("node-a.node.consul.").unwrap()
    );
    let r = dns.udp("node-a.node.dc1.consul.", RecordType::A).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);
    // Case-insensitive, in the question and against the catalog's spelling.
    let r = dns.udp("NODE-A.Node.CONSUL.", RecordType::A).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);
    let r = dns.udp("mixed-case.node.consul.", RecordType::AAAA).await;
    assert_eq!(r.answers.len(), 1);
    assert_eq!(
        r.answers[0].data,
        RData::AAAA("2001:db8::5".parse::<std::net::Ipv6Addr>().unwrap().into())
    );
    // A known node without records of the asked type: NOERROR, empty, SOA.
    let r = dns.udp("mixed-case.node.consul.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);

    // Service A: healthy and warning instances; critical service or node checks hide them.
    let r = dns.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&r),
        [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 10)]
    );
    let r = dns.udp("WEB.Service.Consul.", RecordType::A).await;
    assert_eq!(a_records(&r).len(), 2);
    // Tag filter (node-c and node-d carry `primary` too, but are critical).
    let r = dns.udp("primary.web.service.consul.", RecordType::A).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);
    let r = dns
        .udp("nosuchtag.web.service.consul.", RecordType::A)
        .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);

    // SRV: priority 1, weights by health, targets with their A records as additionals.
    let r = dns.udp("web.service.consul.", RecordType::SRV).await;
    let srvs = srv_records(&r);
    assert_eq!(srvs.len(), 2);
    assert_eq!(
        (srvs[0].priority, srvs[0].weight, srvs[0].port),
        (1, 10, 8080)
    );
    assert_eq!(
        srvs[0].target,
        Name::from_ascii("node-a.node.dc1.consul.").unwrap()
    );
    assert_eq!(
        additional_a(&r, "node-a.node.dc1.consul."),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    // node-b's instance has its own address: Consul's hex `addr` target; weight = warning.
    assert_eq!(
        (srvs[1].priority, srvs[1].weight, srvs[1].port),
        (1, 3, 8081)
    );
    assert_eq!(
        srvs[1].target,
        Name::from_ascii("c000020a.addr.dc1.consul.").unwrap()
    );
    assert_eq!(
        additional_a(&r, "c000020a.addr.dc1.consul."),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    );
    // ... and that target resolves.
    let r2 = dns.udp("c000020a.addr.dc1.consul.", RecordType::A).await;
    assert_eq!(a_records(&r2), [Ipv4Addr::new(192, 0, 2, 10)]);

    // RFC 2782 forms: `_tcp` is no tag, `_<tag>` filters; `.service` may be left out.
    let r = dns.udp("_web._tcp.service.consul.", RecordType::SRV).await;
    assert_eq!(srv_records(&r).len(), 2);
    let r = dns.udp("_web._tcp.consul.", RecordType::SRV).await;
    assert_eq!(srv_records(&r).len(), 2);
    let r = dns
        .udp("_web._secondary.service.dc1.consul.", RecordType::SRV)
        .await;
    let srvs = srv_records(&r);
    assert_eq!(srvs.len(), 1);
    assert_eq!(srvs[0].port, 8081);

    // The server itself is the `consul` service (the agent registers it in the catalog).
    let expected = match server.raft_addr.ip() {
        IpAddr::V4(ip) => ip,
        other => panic!("dev server advertises {other}"),
    };
    common::wait_until("consul.service.consul answers", || async {
        let r = dns.udp("consul.service.consul.", RecordType::A).await;
        a_records(&r) == [expected]
    })
    .await;

    // Unknown names, services and datacenters: NXDOMAIN with the SOA.
    for name in [
        "nosuch.node.consul.",
        "nosuch.service.consul.",
        "web.service.dc2.consul.",
        "whatever.consul.",
    ] {
        let r = dns.udp(name, RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(r.answers.is_empty(), "{name}");
        let soa = match &r.authorities[..] {
            [Record {
                data: RData::SOA(soa),
                ..
            }] => soa.clone(),
            other => panic!("{name}: authority {other:?}"),
        };
        assert_eq!(soa.mname, Name::from_ascii("ns.consul.").unwrap());
        assert_eq!(soa.rname, Name::from_ascii("hostmaster.consul.").unwrap());
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (3600, 600, 86400, 0)
        );
    }

    // UDP without EDNS0: at most udp_answer_limit (3) answers; EDNS0 and TCP get all ten.
    let r = dns.udp("many.service.consul.", RecordType::A).await;
    assert_eq!(r.answers.len(), 3);
    assert!(!r.metadata.truncation);
    let r = dns.udp("many.service.consul.", RecordType::SRV).await;
    assert_eq!(r.answers.len(), 3);
    assert_eq!(r.additionals.len(), 3, "extras follow the kept answers");
    for srv in srv_records(&r) {
        assert!(additional_a(&r, &srv.target.to_ascii()).is_some());
    }
    let r = udp_exchange(
        dns.udp,
        &query("many.service.consul.", RecordType::A, Some(4096)),
    )
    .await;
    assert_eq!(r.answers.len(), 10);
    assert_eq!(r.edns.as_ref().map(|e| e.max_payload()), Some(4096));
    // A small EDNS0 buffer: whole SRV answers (with their extras) are dropped until the
    // reply fits; the TC bit stays clear, as in Consul.
    let q = query("many.service.consul.", RecordType::SRV, Some(520));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(dns.udp).await.unwrap();
    socket.send(&q.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(REPLY_DEADLINE, socket.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n <= 520, "{n} bytes for a 520-byte buffer");
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert!(!r.metadata.truncation);
    assert!(
        r.answers.len() > 3 && r.answers.len() < 10,
        "{}",
        r.answers.len()
    );
    assert_eq!(r.additionals.len(), r.answers.len());
    let r = tcp_exchange(
        dns.tcp,
        &query("many.service.consul.", RecordType::SRV, None),
    )
    .await;
    assert_eq!(r.answers.len(), 10);
    assert_eq!(r.additionals.len(), 10);
    let r = tcp_exchange(dns.tcp, &query("node-a.node.consul.", RecordType::A, None)).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);

    // Answers are shuffled: over a few tries, more than one instance comes first.
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = dns.udp("many.service.consul.", RecordType::A).await;
        if let RData::A(A(ip)) = r.answers[0].data {
            firsts.insert(ip);
        }
    }
    assert!(firsts.len() > 1, "the first answer never changed");

    dns.stop().await;
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

/// A fake upstream DNS server on UDP answering every question with `rcode` and, for
/// NOERROR, an A record 203.0.113.7.
async fn fake_recursor(rcode: ResponseCode) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(q.metadata.id, OpCode::Query);
            reply.metadata.response_code = rcode;
            reply.metadata.recursion_available = true;
            reply.add_queries(q.queries.clone());
            if rcode == ResponseCode::NoError {
                let name = q.queries[0].name().clone();
                let a = RData::A(A(Ipv4Addr::new(203, 0, 113, 7)));
                reply.add_answer(Record::from_rdata(name, 60, a));
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_domain() {
    let (server, _dir) = common::dev_server().await;

    // No recursors: REFUSED, recursion not available.
    let dns = Dns::start(&server, DnsConfig::default()).await;
    let r = dns.udp("example.com.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(!r.metadata.recursion_available);
    dns.stop().await;

    // Recursors in order: the failing one is skipped, the next one answers.
    let failing = fake_recursor(ResponseCode::ServFail).await;
    let working = fake_recursor(ResponseCode::NoError).await;
    let config = DnsConfig {
        recursors: vec![failing.to_string(), working.to_string()],
        ..Default::default()
    };
    let dns = Dns::start(&server, config).await;
    let r = dns.udp("example.com.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&r), [Ipv4Addr::new(203, 0, 113, 7)]);
    // Consul names are still answered locally, with RA now set.
    let r = dns.udp("whatever.consul.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.recursion_available);
    dns.stop().await;

    // Every recursor failing: SERVFAIL with RA set.
    let config = DnsConfig {
        recursors: vec![failing.to_string()],
        ..Default::default()
    };
    let dns = Dns::start(&server, config).await;
    let r = dns.udp("example.com.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(r.metadata.recursion_available);
    dns.stop().await;

    // A bad recursor address is a configuration error, not a running server.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = DnsConfig {
        recursors: vec!["dns.example.com".into()],
        ..Default::default()
    };
    let err = serve(
        udp,
        tcp,
        server.service.clone(),
        config,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_do_not_stop_the_server() {
    let (server, _dir) = common::dev_server().await;
    register(&server, "node-a", "10.0.0.1", None, vec![]).await;
    let dns = Dns::start(&server, DnsConfig::default()).await;

    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(dns.udp).await.unwrap();
    // Shorter than a header: dropped without a reply.
    socket.send(&[1, 2, 3]).await.unwrap();
    // A header promising a question that is not there: FORMERR.
    socket
        .send(&[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(REPLY_DEADLINE, socket.recv(&mut buf))
        .await
        .expect("a FORMERR reply")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.id, 0xabcd);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // No question at all: FORMERR from the handler.
    let empty = Message::query();
    let r = udp_exchange(dns.udp, &empty).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // Garbage on TCP closes that connection only.
    let mut stream = TcpStream::connect(dns.tcp).await.unwrap();
    stream
        .write_all(&[0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    drop(stream);

    // Still serving both transports.
    let r = dns.udp("node-a.node.consul.", RecordType::A).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);
    let r = tcp_exchange(dns.tcp, &query("node-a.node.consul.", RecordType::A, None)).await;
    assert_eq!(a_records(&r), [Ipv4Addr::new(10, 0, 0, 1)]);

    dns.stop().await;
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
