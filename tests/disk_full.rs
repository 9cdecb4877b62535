//! Disk full: a server whose data directory's file system fills up (a small tmpfs,
//! mounted by the test, so it runs as root) refuses writes with the reason
//! (`RESOURCE_EXHAUSTED` over gRPC, 500 over HTTP) before the disk is actually out of
//! space, keeps serving reads, restarts with every acknowledged write, and takes writes
//! again as soon as space is freed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{elected, wait_until, Agent};
use rostra::client::{Client, ClientError};
use rostra::pb;

const MIB: u64 = 1024 * 1024;
/// The server's reserve in this test (`limits.min_free_disk_bytes`).
/// Above what the writes taken still need (see `raft::space`).
const RESERVE: u64 = 160 * MIB;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mib: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and must run as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    rostra::raft::space::free_bytes(dir).expect("statvfs on the tmpfs")
}

async fn all_present(c: &Client, acked: &[String]) {
    let listed = c
        .list(pb::ListRequest {
            prefix: "big/".into(),
            consistency: pb::Consistency::Default as i32,
            ..Default::default()
        })
        .await
        .expect("reads are served");
    let keys: std::collections::BTreeSet<String> =
        listed.kvs.into_iter().map(|kv| kv.key).collect();
    for k in acked {
        assert!(keys.contains(k), "acknowledged {k} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), 512);
    let data = fs.0.join("data");
    let config = dir.path().join("limits.json");
    std::fs::write(
        &config,
        format!(r#"{{"limits": {{"min_free_disk_bytes": {RESERVE}}}}}"#),
    )
    .unwrap();
    let args: Vec<String> = [
        "-server",
        "-bootstrap-expect",
        "1",
        "-node",
        "full",
        "-config-file",
        config.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Agent::spawn(&data, &args);
    let c = elected(&agent).await;

    // Another process fills the disk to a little above the reserve.
    let ballast = fs.0.join("ballast");
    let fill = free_bytes(&fs.0).saturating_sub(RESERVE + 40 * MIB);
    std::fs::write(&ballast, vec![0u8; fill as usize]).unwrap();

    // Rostra's own writes take it down to the reserve; then it refuses, with the reason.
    // Incompressible, so the disk fills as the bytes say.
    let value = || {
        (0..256 * 1024)
            .map(|_| rand::random::<u8>())
            .collect::<Vec<u8>>()
    };
    let mut acked = Vec::new();
    let refused = loop {
        let key = format!("big/{:05}", acked.len());
        match c.put(&key, value(), 0, None).await {
            Ok(_) => acked.push(key),
            Err(ClientError::Rpc(s)) => break s,
            Err(e) => panic!("{e}"),
        }
        assert!(acked.len() < 2000, "writes were never refused");
    };
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    assert!(refused.message().contains("disk nearly full"), "{refused}");
    assert!(!acked.is_empty(), "the first writes had room");
    let http = reqwest::Client::new();
    let r = http
        .put(format!("http://{}/v1/kv/http/x", agent.http_addr))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("disk nearly full"));
    // Reads go on, consistent ones included.
    all_present(&c, &acked).await;
    let r = http
        .get(format!(
            "http://{}/v1/kv/{}?consistent",
            agent.http_addr, acked[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A crash while full: the store reopens whole (RocksDB replays and flushes its WAL
    // within the reserve). Recovery may free some space (the replayed WAL is dropped);
    // the other process fills it again, and writes are still refused.
    agent.kill();
    agent.restart();
    let c = elected(&agent).await;
    all_present(&c, &acked).await;
    let top_up = free_bytes(&fs.0).saturating_sub(RESERVE - 8 * MIB);
    std::fs::write(fs.0.join("ballast2"), vec![0u8; top_up as usize]).unwrap();
    let again = c.put("big/again", b"x".to_vec(), 0, None).await;
    assert!(
        matches!(&again, Err(ClientError::Rpc(s)) if s.code() == tonic::Code::ResourceExhausted),
        "{again:?}"
    );

    // Space freed: writes are taken again without a restart.
    std::fs::remove_file(&ballast).unwrap();
    std::fs::remove_file(fs.0.join("ballast2")).unwrap();
    let c2 = c.clone();
    wait_until("writes are accepted again", || {
        let c = c2.clone();
        async move { c.put("after/space", b"ok".to_vec(), 0, None).await.is_ok() }
    })
    .await;
    for i in 0..20 {
        c.put(&format!("after/{i}"), value(), 0, None)
            .await
            .expect("room again");
    }
    all_present(&c, &acked).await;
    assert!(agent.terminate(), "a clean shutdown");
    drop(agent);
    drop(fs);
}
