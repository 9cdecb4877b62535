//! gRPC `Catalog` and `Health`: registration, queries, and watches that send what changed
//! when (and only when) what they cover changes, and resume after a reconnect.

mod common;

use rostra::client::Client;
use rostra::pb;
use rostra::pb::catalog_client::CatalogClient;
use rostra::pb::health_client::HealthClient;
use rostra::pb::WatchKind as Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_health_over_grpc_with_watches() {
    let (server, _dir) = common::dev_server().await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let mut catalog = CatalogClient::new(client.channel());
    let mut health = HealthClient::new(client.channel());

    catalog
        .register(common::web_registration(
            "n1",
            "web",
            pb::HealthStatus::Passing,
            "",
        ))
        .await
        .unwrap();
    let mut watch = catalog
        .watch_service(pb::WatchServiceRequest {
            name: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = common::next_message(&mut watch).await;
    assert_eq!(first.kind, Kind::Snapshot as i32);
    assert_eq!(first.upserted.len(), 1);
    let synced = common::next_message(&mut watch).await;
    assert_eq!(synced.kind, Kind::Synced as i32);
    let mut health_watch = health
        .watch_service(pb::HealthWatchServiceRequest {
            service: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let h1 = common::next_message(&mut health_watch).await;
    assert_eq!(
        h1.upserted[0].checks[0].status,
        pb::HealthStatus::Passing as i32
    );
    assert_eq!(
        common::next_message(&mut health_watch).await.kind,
        Kind::Synced as i32
    );

    // Another service changes: nothing for the web watchers; then web gains an instance,
    // and the message carries that instance alone.
    catalog
        .register(common::web_registration(
            "n9",
            "db",
            pb::HealthStatus::Passing,
            "",
        ))
        .await
        .unwrap();
    catalog
        .register(common::web_registration(
            "n2",
            "web",
            pb::HealthStatus::Passing,
            "",
        ))
        .await
        .unwrap();
    let second = common::next_message(&mut watch).await;
    assert_eq!(second.kind, Kind::Changes as i32);
    let names = |entries: &[pb::CatalogServiceEntry]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e.node.as_ref().unwrap().name.clone())
            .collect()
    };
    assert_eq!(
        names(&second.upserted),
        vec!["n2"],
        "the next message is web's change, not db's, and only what changed"
    );
    assert!(second.index > synced.index);
    let h2 = common::next_message(&mut health_watch).await;
    assert_eq!((h2.kind, h2.upserted.len()), (Kind::Changes as i32, 1));

    // A check turning critical reaches the health watcher; passing_only leaves it out.
    catalog
        .register(common::web_registration(
            "n2",
            "web",
            pb::HealthStatus::Critical,
            "",
        ))
        .await
        .unwrap();
    let h3 = common::next_message(&mut health_watch).await;
    assert_eq!(h3.upserted.len(), 1);
    let critical = &h3.upserted[0];
    assert_eq!(critical.node.as_ref().unwrap().name, "n2");
    assert_eq!(critical.checks[0].status, pb::HealthStatus::Critical as i32);
    let passing = health
        .service(pb::HealthServiceRequest {
            service: "web".into(),
            passing_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(passing.entries.len(), 1);

    // Queries.
    let services = catalog
        .services(pb::ServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(services.services["web"].tags, vec!["v1"]);
    assert!(services.services.contains_key("consul"));
    let node = catalog
        .node(pb::NodeRequest {
            name: "n1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.services[0].name, "web");
    let missing = catalog
        .node(pb::NodeRequest {
            name: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(missing.node.is_none());
    let crit = health
        .state(pb::HealthStateRequest {
            state: pb::HealthStatus::Critical as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(crit
        .checks
        .iter()
        .all(|c| c.status == pb::HealthStatus::Critical as i32));

    // Deregistering n2 shrinks web back to one instance.
    catalog
        .deregister(pb::DeregisterRequest {
            node: "n2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = common::next_message(&mut watch).await;
    assert!(gone.upserted.is_empty());
    assert_eq!(
        gone.removed,
        vec![pb::InstanceRef {
            node: "n2".into(),
            service_id: "web".into()
        }]
    );

    // Bad input.
    let e = catalog
        .register(pb::RegisterRequest {
            node: Some(pb::Node::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let mut bad = common::web_registration("n3", "x", pb::HealthStatus::Passing, "");
    bad.checks[0].service_id = "nope".into();
    let e = catalog.register(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("Unknown service ID"),
        "{}",
        e.message()
    );
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

/// The catalog's rules are decided once, in the service layer: the same registration
/// sent over gRPC and over HTTP stores the same records, and a bad one fails with the
/// same reason on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_registration_over_grpc_and_http_stores_the_same() {
    let (server, _dir) = common::dev_server().await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let mut catalog = CatalogClient::new(client.channel());
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr);

    // No datacenter, no service ID, no weights, no check ID: every default is applied,
    // and a client's indexes are ignored.
    let grpc_reg = |node: &str| pb::RegisterRequest {
        node: Some(pb::Node {
            name: node.into(),
            address: "10.9.9.9".into(),
            create_index: 777,
            modify_index: 777,
            ..Default::default()
        }),
        skip_node_update: false,
        service: Some(pb::ServiceInstance {
            name: "same".into(),
            port: 9000,
            create_index: 777,
            ..Default::default()
        }),
        checks: vec![pb::HealthCheck {
            name: "same-alive".into(),
            status: pb::HealthStatus::Passing as i32,
            service_id: "same".into(),
            ..Default::default()
        }],
    };
    let http_reg = |node: &str| {
        serde_json::json!({
            "Node": node, "Address": "10.9.9.9", "CreateIndex": 777,
            "Service": {"Service": "same", "Port": 9000, "CreateIndex": 777},
            "Check": {"Name": "same-alive", "Status": "passing", "ServiceID": "same"}
        })
    };
    catalog.register(grpc_reg("via-grpc")).await.unwrap();
    let r = http
        .put(format!("{base}/v1/catalog/register"))
        .json(&http_reg("via-http"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let entries = catalog
        .service(pb::ServiceRequest {
            name: "same".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert_eq!(entries.len(), 2);
    let normalized = |e: &pb::CatalogServiceEntry| {
        let mut node = e.node.clone().unwrap();
        let mut svc = e.service.clone().unwrap();
        assert!(
            node.create_index < 777 && svc.create_index < 777,
            "server indexes"
        );
        (node.name, node.create_index, node.modify_index) = (String::new(), 0, 0);
        (svc.node, svc.create_index, svc.modify_index) = (String::new(), 0, 0);
        (node, svc)
    };
    let (a, b) = (normalized(&entries[0]), normalized(&entries[1]));
    assert_eq!(a, b);
    assert_eq!(a.0.datacenter, "dc1");
    assert_eq!(
        (a.1.id.as_str(), a.1.weight_passing, a.1.weight_warning),
        ("same", Some(1), Some(1))
    );
    let checks = HealthClient::new(client.channel())
        .checks(pb::HealthChecksRequest {
            service: "same".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .checks;
    assert_eq!(checks.len(), 2);
    assert!(
        checks.iter().all(|c| c.check_id == "same-alive"),
        "{checks:?}"
    );

    // The same mistakes fail with the same reasons.
    let mut no_address = grpc_reg("bad");
    no_address.node.as_mut().unwrap().address.clear();
    let mut wide_port = grpc_reg("bad");
    wide_port.service.as_mut().unwrap().port = 70_000;
    let mut other_dc = grpc_reg("bad");
    other_dc.node.as_mut().unwrap().datacenter = "dc9".into();
    let mut http_no_address = http_reg("bad");
    http_no_address["Address"] = "".into();
    let mut http_wide_port = http_reg("bad");
    http_wide_port["Service"]["Port"] = 70_000.into();
    let mut http_other_dc = http_reg("bad");
    http_other_dc["Datacenter"] = "dc9".into();
    for (grpc, json, http_status) in [
        (no_address, http_no_address, 400),
        (wide_port, http_wide_port, 400),
        // Consul's answer for a datacenter it cannot reach.
        (other_dc, http_other_dc, 500),
    ] {
        let over_grpc = catalog.register(grpc).await.unwrap_err();
        assert_eq!(over_grpc.code(), tonic::Code::InvalidArgument);
        let r = http
            .put(format!("{base}/v1/catalog/register"))
            .json(&json)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), http_status);
        let over_http = r.text().await.unwrap();
        assert_eq!(over_http.trim(), over_grpc.message(), "the same reason");
    }
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
