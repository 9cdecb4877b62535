//! gRPC `Lock.Hold`: the lock is held for the life of a stream, waiters get it in arrival
//! order with fencing tokens that only grow, a destroyed session is reported `Lost`, and
//! a semaphore admits `limit` holders.

mod common;

use rostra::client::Client;
use rostra::pb;
use rostra::pb::lock_client::LockClient;
use rostra::pb::lock_hold_response::Event;
use tonic::Streaming;

async fn hold(c: &Client, name: &str, limit: u32) -> Streaming<pb::LockHoldResponse> {
    LockClient::new(c.channel())
        .hold(pb::LockHoldRequest {
            name: name.into(),
            limit,
            session_name: "test".into(),
        })
        .await
        .expect("hold starts")
        .into_inner()
}

async fn next(s: &mut Streaming<pb::LockHoldResponse>) -> Event {
    tokio::time::timeout(common::DEADLINE, s.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open")
        .event
        .expect("an event")
}

fn acquired(e: Event) -> pb::LockAcquired {
    match e {
        Event::Acquired(a) => a,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn queued(e: Event) -> u32 {
    match e {
        Event::Queued(q) => q.ahead,
        other => panic!("expected Queued, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_fair_fenced_and_end_with_the_stream() {
    let (server, _dir) = common::dev_server().await;
    let c = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    // Sessions need the agent's node registration.
    common::wait_until("the agent's node is registered", || async {
        c.catalog()
            .node(pb::NodeRequest {
                name: "test-node".into(),
                ..Default::default()
            })
            .await
            .is_ok_and(|r| r.into_inner().node.is_some())
    })
    .await;

    let mut first = hold(&c, "jobs/nightly", 1).await;
    let t1 = acquired(next(&mut first).await).token;
    let mut second = hold(&c, "jobs/nightly", 1).await;
    assert_eq!(queued(next(&mut second).await), 1);
    let mut third = hold(&c, "jobs/nightly", 1).await;
    assert_eq!(queued(next(&mut third).await), 2);

    // The first client goes away: the next in line gets the lock, with a larger token.
    drop(first);
    let a2 = acquired(next(&mut second).await);
    assert!(a2.token > t1, "{} > {t1}", a2.token);
    assert_eq!(queued(next(&mut third).await), 1);

    // Its session destroyed, the holder is told it lost the lock; the third takes over.
    let mut sessions = pb::session_client::SessionClient::new(c.channel());
    sessions
        .destroy(pb::SessionDestroyRequest {
            id: a2.session.clone(),
        })
        .await
        .unwrap();
    match next(&mut second).await {
        Event::Lost(l) => assert_eq!(l.reason, "session invalidated"),
        other => panic!("expected Lost, got {other:?}"),
    }
    let a3 = acquired(next(&mut third).await);
    assert!(a3.token > a2.token);

    // A semaphore of two: two holders, the third waits.
    let mut s1 = hold(&c, "pool", 2).await;
    let mut s2 = hold(&c, "pool", 2).await;
    let mut s3 = hold(&c, "pool", 2).await;
    acquired(next(&mut s1).await);
    acquired(next(&mut s2).await);
    assert_eq!(queued(next(&mut s3).await), 1);
    drop(s2);
    acquired(next(&mut s3).await);

    // Bad input.
    let e = LockClient::new(c.channel())
        .hold(pb::LockHoldRequest {
            name: "/abs".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    // Holds still open at shutdown end with the server.
    let _open = (third, s1, s3);
    server.shutdown().await.expect("clean shutdown");
}
