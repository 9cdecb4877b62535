//! The gRPC ecosystem's conventions on the public port, spoken by their own clients:
//! server reflection (what grpcurl and Postman use to list and call services) and the
//! standard health service, SERVING only while the node knows a leader.

mod common;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

async fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn health(addr: &str, service: &str) -> Result<ServingStatus, tonic::Status> {
    let r = HealthClient::new(channel(addr).await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(r.into_inner().status())
}

async fn reflect(addr: &str, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let out = futures::stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut replies = client
        .server_reflection_info(out)
        .await
        .unwrap()
        .into_inner();
    replies
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_public_services_and_describes_them() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let MessageResponse::ListServicesResponse(list) =
        reflect(&addr, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "rostra.v1.Catalog",
        "rostra.v1.Event",
        "rostra.v1.Exec",
        "rostra.v1.Health",
        "rostra.v1.KV",
        "rostra.v1.Lock",
        "rostra.v1.Session",
        "rostra.v1.Status",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("rostra.internal")),
        "internal services are not on the public port: {names:?}"
    );
    // A method's file, with what it imports, as grpcurl asks before a call.
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &addr,
        MessageRequest::FileContainingSymbol("rostra.v1.KV.Put".into()),
    )
    .await
    else {
        panic!("not a file descriptor answer");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_only_with_a_leader() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    common::wait_until("the dev agent reports SERVING", || async {
        health(&addr, "").await.ok() == Some(ServingStatus::Serving)
    })
    .await;
    // Every public service the server reflects has a health status of its own.
    let MessageResponse::ListServicesResponse(list) =
        reflect(&addr, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a service list");
    };
    let public: Vec<String> = list
        .service
        .into_iter()
        .map(|s| s.name)
        .filter(|n| n.starts_with("rostra.v1."))
        .collect();
    assert!(public.len() >= 8, "{public:?}");
    for name in &public {
        assert_eq!(
            health(&addr, name).await.ok(),
            Some(ServingStatus::Serving),
            "{name}"
        );
    }
    let unknown = health(&addr, "no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.shutdown().await.expect("clean shutdown");

    // A server waiting for two more to bootstrap has no leader: NOT_SERVING.
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "-server",
        "-bootstrap-expect",
        "3",
        "-node",
        "alone",
        "-bind",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut alone = common::Agent::spawn(dir.path(), &args);
    common::wait_until("the lone server reports NOT_SERVING", || async {
        health(&alone.grpc_addr, "").await.ok() == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(
        health(&alone.grpc_addr, "rostra.v1.KV").await.unwrap(),
        ServingStatus::NotServing
    );
    assert!(alone.terminate());
}
