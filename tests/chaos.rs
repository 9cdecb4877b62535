//! The chaos test: three servers as child processes, 64 clients doing put, CAS, get and
//! delete on a small key set over gRPC and HTTP, and lock contenders writing a fenced
//! resource, while faults are injected at random: SIGKILL of the leader or a follower
//! (then a restart), SIGSTOP pauses longer than the election timeout, and partitions
//! between servers through a proxy on the raft ports (`common::faults`).
//!
//! Every operation's invocation and response is recorded and each key's history is
//! checked for linearizability (`common::linearizability`). An operation whose outcome
//! the client cannot know (a timeout, a dropped connection, a server error) enters the
//! history as unknown. A watch on the whole key space, resumed across faults, records
//! every committed change; it decides the unknown writes (values are unique, so a write
//! that committed shows up in it), every acknowledged write must be in it, and its last
//! value for each key must be every server's final value.
//!
//! Short mode (about 60 s of faults) runs with the test suite. Longer runs:
//! `ROSTRA_CHAOS_SECS=300 ROSTRA_CHAOS_LEADER_KILL_SECS=10 cargo test --test chaos --
//! --nocapture` (the long mode README reports: the leader killed every 10 s, other faults
//! in between). `ROSTRA_CHAOS_SEED` replays a fault schedule.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use common::faults::{signal, PeerProxy};
use common::linearizability::{check, Operation, Register, RegisterInput, RegisterOutput};
use common::{wait_until, Agent};
use rand::{Rng, SeedableRng};
use rostra::client::Client;
use rostra::pb;
use rostra::pb::lock_client::LockClient;

const SERVERS: usize = 3;
const CLIENTS: usize = 64;
const KEYS: usize = 16;
const CONTENDERS: usize = 4;
/// Longer than a failover (election timeout 0.5–1 s plus a pause), so an operation on a
/// healthy path is not written off as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
const PREFIX: &str = "chaos/";
const LOCK: &str = "chaos-lock";
const FENCED: &str = "chaos-fenced/resource";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn front_ip(i: usize) -> IpAddr {
    format!("127.0.0.{}", i + 2).parse().unwrap()
}

fn back_ip(i: usize) -> IpAddr {
    format!("127.0.0.{}", i + 12).parse().unwrap()
}

fn key_name(k: usize) -> String {
    format!("{PREFIX}k{k:02}")
}

/// Where each server's client ports are now (HTTP moves on a restart).
#[derive(Clone)]
struct Endpoint {
    grpc: String,
    http: String,
}

type Endpoints = Arc<RwLock<Vec<Endpoint>>>;

/// Microseconds since the run started: the history's clock.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// One recorded KV operation.
struct Record {
    key: usize,
    input: RegisterInput,
    output: RegisterOutput,
    call: u64,
    ret: Option<u64>,
    grpc: bool,
    server: usize,
}

/// How a failed call ended: known not to have happened, or unknown.
enum Failure {
    NotSent,
    Unknown,
}

fn is_connection_refused(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        match e.source() {
            Some(s) => e = s,
            None => return false,
        }
    }
}

fn grpc_failure(s: &tonic::Status) -> Failure {
    use tonic::Code;
    match s.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unimplemented => {
            panic!("the chaos client sent a bad request: {s}")
        }
        Code::Unavailable if is_connection_refused(s) => Failure::NotSent,
        _ => Failure::Unknown,
    }
}

fn http_failure(e: &reqwest::Error) -> Failure {
    if e.is_connect() {
        Failure::NotSent
    } else {
        Failure::Unknown
    }
}

enum Outcome {
    Done(RegisterOutput),
    Failed(Failure),
}

/// What a client last saw of a key: its value and modify index (CAS input).
#[derive(Clone, Copy)]
struct Seen {
    value: Option<u64>,
    index: u64,
}

fn parse_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a chaos key holds a value no client wrote: {bytes:?}"))
}

async fn grpc_op(c: &Client, key: &str, input: &RegisterInput, seen: &mut Option<Seen>) -> Outcome {
    use RegisterInput as I;
    let call = async {
        match input {
            I::Get => {
                let r = c.get(key, pb::Consistency::Default).await?;
                let value = r.kv.as_ref().map(|kv| parse_value(&kv.value));
                let index = r.kv.map(|kv| kv.modify_index).unwrap_or(0);
                *seen = Some(Seen { value, index });
                Ok(RegisterOutput::Value(value))
            }
            I::Put(v) => {
                let r = c.put(key, v.to_string().into_bytes(), 0, None).await?;
                let index = r.header.map(|h| h.index).unwrap_or(0);
                *seen = Some(Seen {
                    value: Some(*v),
                    index,
                });
                Ok(RegisterOutput::Done)
            }
            I::Cas { new, .. } => {
                let cas = seen.map(|s| s.index).unwrap_or(0);
                let r = c
                    .put(key, new.to_string().into_bytes(), 0, Some(cas))
                    .await?;
                *seen = None;
                Ok(RegisterOutput::CasResult(r.succeeded))
            }
            I::Delete => {
                c.delete(key, false, None).await?;
                *seen = None;
                Ok(RegisterOutput::Done)
            }
        }
    };
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(Ok(out)) => Outcome::Done(out),
        Ok(Err(rostra::client::ClientError::Rpc(s))) => Outcome::Failed(grpc_failure(&s)),
        Ok(Err(e)) => panic!("unexpected client error: {e}"),
        Err(_) => Outcome::Failed(Failure::Unknown),
    }
}

async fn http_op(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    input: &RegisterInput,
    seen: &mut Option<Seen>,
) -> Outcome {
    use RegisterInput as I;
    let url = format!("http://{base}/v1/kv/{key}");
    let sent = match input {
        I::Get => http.get(&url).send().await,
        I::Put(v) => http.put(&url).body(v.to_string()).send().await,
        I::Cas { new, .. } => {
            let cas = seen.map(|s| s.index).unwrap_or(0);
            http.put(format!("{url}?cas={cas}"))
                .body(new.to_string())
                .send()
                .await
        }
        I::Delete => http.delete(&url).send().await,
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(http_failure(&e)),
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(http_failure(&e)),
    };
    if status.is_client_error() && !(matches!(input, I::Get) && status == 404) {
        panic!(
            "the chaos client sent a bad request: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    if !status.is_success() && status != 404 {
        return Outcome::Failed(Failure::Unknown);
    }
    match input {
        I::Get if status == 404 => {
            *seen = Some(Seen {
                value: None,
                index: 0,
            });
            Outcome::Done(RegisterOutput::Value(None))
        }
        I::Get => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("KV JSON");
            let pair = &v[0];
            let raw = base64::engine::general_purpose::STANDARD
                .decode(pair["Value"].as_str().unwrap_or_default())
                .expect("base64 value");
            let value = parse_value(&raw);
            *seen = Some(Seen {
                value: Some(value),
                index: pair["ModifyIndex"].as_u64().expect("ModifyIndex"),
            });
            Outcome::Done(RegisterOutput::Value(Some(value)))
        }
        I::Put(_) | I::Delete => {
            *seen = None;
            Outcome::Done(RegisterOutput::Done)
        }
        I::Cas { .. } => {
            *seen = None;
            let ok = std::str::from_utf8(&body).unwrap_or_default().trim() == "true";
            Outcome::Done(RegisterOutput::CasResult(ok))
        }
    }
}

/// One KV client: random operations on random keys until `stop`, through its server
/// (moving to the next one after a failure), over gRPC or HTTP.
async fn kv_client(
    id: usize,
    endpoints: Endpoints,
    clock: Clock,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<Record> {
    let grpc = id % 2 == 0;
    let mut server = id % SERVERS;
    let mut records = Vec::new();
    let mut seen: HashMap<usize, Seen> = HashMap::new();
    let mut seq: u64 = 0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(id as u64);
    let http = reqwest::Client::builder()
        .timeout(OP_TIMEOUT)
        .build()
        .unwrap();
    let mut grpc_client: Option<(usize, Client)> = None;
    while !stop.is_cancelled() {
        let key = rng.random_range(0..KEYS);
        seq += 1;
        // Unique across the run: client id and sequence.
        let value = (id as u64 + 1) << 32 | seq;
        let mut key_seen = seen.get(&key).copied();
        let roll = rng.random_range(0..100);
        let input = match roll {
            0..40 => RegisterInput::Get,
            40..70 => RegisterInput::Put(value),
            70..90 => match key_seen {
                Some(s) => RegisterInput::Cas {
                    expect: s.value,
                    new: value,
                },
                None => RegisterInput::Get,
            },
            _ => RegisterInput::Delete,
        };
        let name = key_name(key);
        let endpoint = endpoints.read().unwrap()[server].clone();
        let call = clock.now();
        let outcome = if grpc {
            if grpc_client.as_ref().map(|(s, _)| *s) != Some(server) {
                grpc_client = match Client::connect(&endpoint.grpc).await {
                    Ok(c) => Some((server, c)),
                    Err(_) => None,
                };
            }
            match &grpc_client {
                Some((_, c)) => grpc_op(c, &name, &input, &mut key_seen).await,
                None => Outcome::Failed(Failure::NotSent),
            }
        } else {
            http_op(&http, &endpoint.http, &name, &input, &mut key_seen).await
        };
        let ret = clock.now();
        match key_seen {
            Some(s) => seen.insert(key, s),
            None => seen.remove(&key),
        };
        match outcome {
            Outcome::Done(output) => records.push(Record {
                key,
                input,
                output,
                call,
                ret: Some(ret),
                grpc,
                server,
            }),
            Outcome::Failed(failure) => {
                if matches!(failure, Failure::Unknown) && !matches!(input, RegisterInput::Get) {
                    records.push(Record {
                        key,
                        input,
                        output: RegisterOutput::Unknown,
                        call,
                        ret: None,
                        grpc,
                        server,
                    });
                }
                // A read that failed had no effect; a write that was never sent neither.
                seen.remove(&key);
                server = (server + 1) % SERVERS;
                grpc_client = None;
                // Back off a little so a down server is not hammered.
                let pause = rng.random_range(20..120);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
    records
}

/// A committed change as the watch saw it.
#[derive(Debug, Clone)]
struct Committed {
    index: u64,
    key: String,
    value: Option<Vec<u8>>,
}

/// Follows every key under "chaos" from index 0, resuming on the next server when a
/// stream breaks, until `until` is at or below its index and `stop` is set.
async fn watcher(
    endpoints: Endpoints,
    stop: tokio_util::sync::CancellationToken,
    until: Arc<Mutex<u64>>,
) -> (Vec<Committed>, usize) {
    let mut changes = Vec::new();
    let mut resets = 0;
    let mut index = 0u64;
    let mut server = 0;
    loop {
        if stop.is_cancelled() && index >= *until.lock().unwrap() && index > 0 {
            return (changes, resets);
        }
        let endpoint = endpoints.read().unwrap()[server].clone();
        server = (server + 1) % SERVERS;
        let Ok(c) = Client::connect(&endpoint.grpc).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let opened = c
            .kv()
            .watch(pb::WatchRequest {
                key: "chaos".into(),
                prefix: true,
                start_index: index,
            })
            .await;
        let Ok(stream) = opened else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        let mut snapshot = index == 0;
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
            let msg = match next {
                Err(_) => {
                    if stop.is_cancelled() && index >= *until.lock().unwrap() && index > 0 {
                        return (changes, resets);
                    }
                    continue;
                }
                Ok(Ok(Some(m))) => m,
                Ok(_) => break,
            };
            match pb::WatchKind::try_from(msg.kind) {
                Ok(pb::WatchKind::Snapshot) => {
                    // The first view of an empty key space holds nothing; after a reset
                    // the snapshot is the state, not the changes that led to it.
                    assert!(
                        !snapshot || msg.events.is_empty() || resets > 0,
                        "the chaos keys existed before the run"
                    );
                }
                Ok(pb::WatchKind::Synced) => {
                    snapshot = false;
                    index = index.max(msg.index);
                }
                Ok(pb::WatchKind::Changes) => {
                    assert!(
                        msg.index > index,
                        "a watch went back: {} after {index}",
                        msg.index
                    );
                    index = msg.index;
                    for e in msg.events {
                        let kv = e.kv.unwrap_or_default();
                        let put = e.r#type == pb::kv_event::Type::Put as i32;
                        changes.push(Committed {
                            index: msg.index,
                            key: kv.key,
                            value: put.then_some(kv.value),
                        });
                    }
                }
                Ok(pb::WatchKind::Reset) => {
                    resets += 1;
                    snapshot = true;
                }
                _ => {}
            }
        }
    }
}

/// One lock acquisition as a contender saw it.
#[derive(Debug, Clone)]
struct Acquisition {
    contender: usize,
    token: u64,
    requested: u64,
    acquired: u64,
}

/// One acknowledged write to the fenced resource.
#[derive(Debug, Clone)]
struct FencedWrite {
    value: String,
}

#[derive(Default)]
struct LockLog {
    acquisitions: Vec<Acquisition>,
    writes: Vec<FencedWrite>,
    fenced_out: usize,
}

/// A lock contender: hold the lock, write the fenced resource a few times with CAS on
/// its modify index (refusing to write over a higher token), release, repeat.
async fn contender(
    id: usize,
    endpoints: Endpoints,
    clock: Clock,
    stop: tokio_util::sync::CancellationToken,
) -> LockLog {
    let mut log = LockLog::default();
    let mut server = id % SERVERS;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + id as u64);
    while !stop.is_cancelled() {
        let endpoint = endpoints.read().unwrap()[server].clone();
        server = (server + 1) % SERVERS;
        let Ok(Ok(c)) = tokio::time::timeout(OP_TIMEOUT, Client::connect(&endpoint.grpc)).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let requested = clock.now();
        let mut locks = LockClient::new(c.channel());
        let hold = locks.hold(pb::LockHoldRequest {
            name: LOCK.into(),
            limit: 1,
            session_name: format!("contender-{id}"),
        });
        let Ok(Ok(stream)) = tokio::time::timeout(OP_TIMEOUT, hold).await else {
            continue;
        };
        let mut stream = stream.into_inner();
        let acquired = loop {
            let wait = tokio::select! {
                _ = stop.cancelled() => break None,
                m = tokio::time::timeout(Duration::from_secs(20), stream.message()) => m,
            };
            match wait {
                Ok(Ok(Some(m))) => match m.event {
                    Some(pb::lock_hold_response::Event::Acquired(a)) => break Some(a),
                    Some(pb::lock_hold_response::Event::Queued(_)) => continue,
                    _ => break None,
                },
                _ => break None,
            }
        };
        let Some(acquired) = acquired else {
            continue;
        };
        let token = acquired.token;
        log.acquisitions.push(Acquisition {
            contender: id,
            token,
            requested,
            acquired: clock.now(),
        });
        'writes: for seq in 0..3 {
            let mut attempts = 0;
            loop {
                attempts += 1;
                if attempts > 3 || stop.is_cancelled() {
                    break 'writes;
                }
                let Ok(Ok(r)) =
                    tokio::time::timeout(OP_TIMEOUT, c.get(FENCED, pb::Consistency::Default)).await
                else {
                    break 'writes;
                };
                let (current, index) = match r.kv {
                    Some(kv) => (
                        String::from_utf8(kv.value).expect("fenced value"),
                        kv.modify_index,
                    ),
                    None => (String::new(), 0),
                };
                let stored: u64 = current
                    .split(':')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if stored > token {
                    // A later holder has written: this hold is stale.
                    log.fenced_out += 1;
                    break 'writes;
                }
                let value = format!("{token}:{id}:{seq}");
                let put = c.put(FENCED, value.clone().into_bytes(), 0, Some(index));
                match tokio::time::timeout(OP_TIMEOUT, put).await {
                    Ok(Ok(r)) if r.succeeded => {
                        log.writes.push(FencedWrite { value });
                        break;
                    }
                    Ok(Ok(_)) => continue,
                    _ => break 'writes,
                }
            }
        }
        drop(stream);
        let pause = rng.random_range(10..100);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    log
}

/// The servers, owned by the fault injector.
struct Cluster {
    servers: Vec<Agent>,
    endpoints: Endpoints,
    proxy: PeerProxy,
}

impl Cluster {
    async fn start(dirs: &[tempfile::TempDir]) -> Cluster {
        let proxy = PeerProxy::start(SERVERS, front_ip, back_ip).await;
        let mut servers: Vec<Agent> = Vec::new();
        for i in 0..SERVERS {
            let mut args: Vec<String> = [
                "-server",
                "-bootstrap-expect",
                "3",
                "-node",
                &format!("s{i}"),
                "-bind",
                &back_ip(i).to_string(),
                "-advertise",
                &front_ip(i).to_string(),
                "-client",
                &back_ip(i).to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if i > 0 {
                args.extend(["-retry-join".to_string(), proxy.fronts[0].to_string()]);
            }
            let port = proxy.fronts[i].port().to_string();
            let agent =
                tokio::task::block_in_place(|| Agent::spawn_on(dirs[i].path(), &args, "0", &port));
            assert_eq!(agent.raft_addr, proxy.fronts[i].to_string());
            servers.push(agent);
        }
        let endpoints = Arc::new(RwLock::new(
            servers
                .iter()
                .map(|a| Endpoint {
                    grpc: a.grpc_addr.clone(),
                    http: a.http_addr.clone(),
                })
                .collect(),
        ));
        Cluster {
            servers,
            endpoints,
            proxy,
        }
    }

    /// The index of the current leader, asked of every server that answers.
    async fn leader(&self) -> Option<usize> {
        for a in &self.servers {
            let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(1), Client::connect(&a.grpc_addr)).await
            else {
                continue;
            };
            if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(1), c.leader()).await {
                if let Some(i) = self
                    .proxy
                    .fronts
                    .iter()
                    .position(|f| f.to_string() == l.address)
                {
                    return Some(i);
                }
            }
        }
        None
    }

    fn restart(&mut self, i: usize) {
        tokio::task::block_in_place(|| self.servers[i].restart());
        self.endpoints.write().unwrap()[i] = Endpoint {
            grpc: self.servers[i].grpc_addr.clone(),
            http: self.servers[i].http_addr.clone(),
        };
    }
}

#[derive(Debug, Default)]
struct FaultCounts {
    leader_kills: usize,
    follower_kills: usize,
    pauses: usize,
    isolations: usize,
    link_cuts: usize,
}

/// Injects one fault at a time, chosen at random every 1–3 s, until `deadline`; a
/// leader kill every `leader_kill_every` when set.
async fn inject_faults(
    cluster: &mut Cluster,
    seed: u64,
    deadline: Instant,
    leader_kill_every: Option<Duration>,
) -> FaultCounts {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut counts = FaultCounts::default();
    let mut last_leader_kill = Instant::now();
    while Instant::now() < deadline {
        let calm = Duration::from_millis(rng.random_range(1000..3000));
        tokio::time::sleep(calm).await;
        let leader = cluster.leader().await;
        let follower = {
            let others: Vec<usize> = (0..SERVERS).filter(|i| Some(*i) != leader).collect();
            others[rng.random_range(0..others.len())]
        };
        let due = leader_kill_every.is_some_and(|every| last_leader_kill.elapsed() >= every);
        let choice = if due { 0 } else { rng.random_range(0..6) };
        let target = match (choice, leader) {
            (0 | 2 | 4, Some(l)) => l,
            _ => follower,
        };
        match choice {
            0 | 1 => {
                if Some(target) == leader {
                    counts.leader_kills += 1;
                    last_leader_kill = Instant::now();
                } else {
                    counts.follower_kills += 1;
                }
                eprintln!("chaos: SIGKILL s{target}");
                cluster.servers[target].kill();
                let down = Duration::from_millis(rng.random_range(200..2000));
                tokio::time::sleep(down).await;
                cluster.restart(target);
            }
            2 | 3 => {
                counts.pauses += 1;
                let pause = Duration::from_millis(rng.random_range(1500..3000));
                eprintln!("chaos: SIGSTOP s{target} for {pause:?}");
                signal(&cluster.servers[target].child, libc::SIGSTOP);
                tokio::time::sleep(pause).await;
                signal(&cluster.servers[target].child, libc::SIGCONT);
            }
            4 => {
                counts.isolations += 1;
                let cut = Duration::from_millis(rng.random_range(1500..4000));
                eprintln!("chaos: isolate s{target} for {cut:?}");
                cluster.proxy.isolate(target);
                tokio::time::sleep(cut).await;
                cluster.proxy.heal_all();
            }
            _ => {
                counts.link_cuts += 1;
                let a = rng.random_range(0..SERVERS);
                let b = (a + rng.random_range(1..SERVERS)) % SERVERS;
                let cut = Duration::from_millis(rng.random_range(1500..4000));
                eprintln!("chaos: cut s{a}-s{b} for {cut:?}");
                cluster.proxy.cut(a, b);
                tokio::time::sleep(cut).await;
                cluster.proxy.heal_all();
            }
        }
    }
    counts
}

/// Lowers a client record into the checker's operation.
fn operation(r: &Record) -> Operation<RegisterInput, RegisterOutput> {
    Operation {
        input: r.input.clone(),
        output: r.output.clone(),
        call: r.call,
        ret: r.ret,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_under_kills_pauses_and_partitions() {
    let secs = env_u64("ROSTRA_CHAOS_SECS", 60);
    let leader_kill_every = match env_u64("ROSTRA_CHAOS_LEADER_KILL_SECS", 0) {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let seed = env_u64("ROSTRA_CHAOS_SEED", rand::random::<u32>() as u64);
    eprintln!("chaos: {secs} s of faults, seed {seed} (ROSTRA_CHAOS_SEED replays the schedule)");

    let dirs: Vec<_> = (0..SERVERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut cluster = Cluster::start(&dirs).await;
    let endpoints = cluster.endpoints.clone();
    wait_until("the cluster elects a leader", || async {
        cluster.leader().await.is_some()
    })
    .await;

    let clock = Clock(Instant::now());
    let stop = tokio_util::sync::CancellationToken::new();
    let watch_stop = tokio_util::sync::CancellationToken::new();
    let watch_until = Arc::new(Mutex::new(0u64));
    let watch = tokio::spawn(watcher(
        endpoints.clone(),
        watch_stop.clone(),
        watch_until.clone(),
    ));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(kv_client(id, endpoints.clone(), clock, stop.clone())))
        .collect();
    let contenders: Vec<_> = (0..CONTENDERS)
        .map(|id| tokio::spawn(contender(id, endpoints.clone(), clock, stop.clone())))
        .collect();

    let deadline = Instant::now() + Duration::from_secs(secs);
    let faults = inject_faults(&mut cluster, seed, deadline, leader_kill_every).await;
    eprintln!("chaos: faults {faults:?}");

    // Heal and let the clients run on a whole cluster for a moment, then stop them.
    cluster.proxy.heal_all();
    wait_until("the healed cluster has a leader", || async {
        cluster.leader().await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut records: Vec<Record> = Vec::new();
    for c in clients {
        records.extend(c.await.unwrap());
    }
    let mut locks = LockLog::default();
    for c in contenders {
        let l = c.await.unwrap();
        locks.acquisitions.extend(l.acquisitions);
        locks.writes.extend(l.writes);
        locks.fenced_out += l.fenced_out;
    }

    // Every server converges on the same final values; those are the last reads.
    let leader = Client::connect(&cluster.servers[cluster.leader().await.unwrap()].grpc_addr)
        .await
        .unwrap();
    let final_list = leader
        .list(pb::ListRequest {
            prefix: "chaos".into(),
            consistency: pb::Consistency::Consistent as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let final_index = final_list.header.as_ref().unwrap().index;
    let finals: BTreeMap<String, Vec<u8>> = final_list
        .kvs
        .iter()
        .filter(|kv| !kv.key.starts_with(&format!("{LOCK}/")))
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    for a in &cluster.servers {
        let c = a.client().await;
        wait_until("every server has the final values", || {
            let c = c.clone();
            let finals = finals.clone();
            async move {
                let Ok(l) = c
                    .list(pb::ListRequest {
                        prefix: "chaos".into(),
                        consistency: pb::Consistency::Stale as i32,
                        ..Default::default()
                    })
                    .await
                else {
                    return false;
                };
                let mine: BTreeMap<String, Vec<u8>> = l
                    .kvs
                    .into_iter()
                    .filter(|kv| !kv.key.starts_with(&format!("{LOCK}/")))
                    .map(|kv| (kv.key, kv.value))
                    .collect();
                mine == finals
            }
        })
        .await;
    }
    *watch_until.lock().unwrap() = final_index;
    watch_stop.cancel();
    let (committed, resets) = tokio::time::timeout(common::DEADLINE, watch)
        .await
        .expect("the watch catches up")
        .unwrap();

    // What the watch says committed, per key, in order.
    let mut history_of: HashMap<String, Vec<&Committed>> = HashMap::new();
    for c in &committed {
        history_of.entry(c.key.clone()).or_default().push(c);
    }
    let committed_values: HashSet<(String, Vec<u8>)> = committed
        .iter()
        .filter_map(|c| c.value.clone().map(|v| (c.key.clone(), v)))
        .collect();

    // The watch's last word on every key is the final state.
    if resets == 0 {
        for (key, changes) in &history_of {
            if key.starts_with(&format!("{LOCK}/")) {
                continue;
            }
            assert!(
                changes.windows(2).all(|w| w[0].index <= w[1].index),
                "{key}: the watch reported changes out of index order"
            );
            let last = changes.last().unwrap().value.clone();
            assert_eq!(
                last.as_ref(),
                finals.get(key),
                "{key}: the watch's last change is not the final value"
            );
        }
    }

    // Every acknowledged write committed; an unknown write is resolved by the watch.
    let was_committed = |key: usize, v: u64| {
        committed_values.contains(&(key_name(key), v.to_string().into_bytes()))
    };
    let mut acknowledged = 0;
    let mut unknown_kept = 0;
    let mut unknown_dropped = 0;
    let mut per_key: Vec<Vec<Operation<RegisterInput, RegisterOutput>>> = vec![Vec::new(); KEYS];
    for r in &records {
        let mut op = operation(r);
        match (&r.input, &r.output) {
            (RegisterInput::Put(v), RegisterOutput::Done)
            | (RegisterInput::Cas { new: v, .. }, RegisterOutput::CasResult(true)) => {
                acknowledged += 1;
                if resets == 0 {
                    assert!(
                        was_committed(r.key, *v),
                        "acknowledged write {v} to {} is not in the committed history",
                        key_name(r.key)
                    );
                }
            }
            (
                RegisterInput::Put(v) | RegisterInput::Cas { new: v, .. },
                RegisterOutput::Unknown,
            ) if resets == 0 => {
                if !was_committed(r.key, *v) {
                    // Never committed: it did not happen.
                    unknown_dropped += 1;
                    continue;
                }
                if matches!(r.input, RegisterInput::Cas { .. }) {
                    op.output = RegisterOutput::CasResult(true);
                }
                unknown_kept += 1;
            }
            (_, RegisterOutput::Unknown) => unknown_kept += 1,
            _ => {}
        }
        per_key[r.key].push(op);
    }
    // The final reads, after everything else.
    let end = clock.now();
    for (k, ops) in per_key.iter_mut().enumerate() {
        let value = finals.get(&key_name(k)).map(|v| parse_value(v));
        ops.push(Operation {
            input: RegisterInput::Get,
            output: RegisterOutput::Value(value),
            call: end,
            ret: Some(end + 1),
        });
    }
    let grpc_ops = records.iter().filter(|r| r.grpc).count();
    eprintln!(
        "chaos: {} operations recorded ({grpc_ops} gRPC, {} HTTP), {acknowledged} acknowledged writes, \
         {unknown_kept} unknown outcomes kept, {unknown_dropped} unknown writes that never committed, \
         {} committed changes watched, {resets} watch resets",
        records.len(),
        records.len() - grpc_ops,
        committed.len()
    );
    let checking = Instant::now();
    for (k, ops) in per_key.iter().enumerate() {
        if !check(&Register, ops) {
            let order = history_of
                .get(&key_name(k))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            diagnose(k, &records, order);
        }
        assert!(
            check(&Register, ops),
            "the history of {} ({} operations) is not linearizable (seed {seed})",
            key_name(k),
            ops.len()
        );
    }
    eprintln!(
        "chaos: {KEYS} key histories linearizable, checked in {:?}",
        checking.elapsed()
    );

    // Locks: tokens unique and increasing in real time, fenced writes never interleave.
    check_locks(
        &locks,
        history_of.get(FENCED).map(Vec::as_slice).unwrap_or(&[]),
        resets,
    );

    for a in &mut cluster.servers {
        assert!(
            a.terminate(),
            "a server did not shut down cleanly after the run"
        );
    }
    let Cluster { proxy, .. } = cluster;
    proxy.shutdown().await;
}

/// Explains a failed check: reads that returned a value older than a write that had
/// been acknowledged before the read began, by the watch's commit order.
fn diagnose(key: usize, records: &[Record], order: &[&Committed]) {
    let pos: HashMap<Vec<u8>, (usize, u64)> = order
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.value.clone().map(|v| (v, (i, c.index))))
        .collect();
    let mut shown = 0;
    let writes: Vec<&Record> = records
        .iter()
        .filter(|r| {
            r.key == key
                && matches!(
                    r.output,
                    RegisterOutput::Done | RegisterOutput::CasResult(true)
                )
        })
        .filter(|r| !matches!(r.input, RegisterInput::Delete))
        .collect();
    for r in records.iter().filter(|r| r.key == key) {
        let (RegisterInput::Get, RegisterOutput::Value(Some(v))) = (&r.input, &r.output) else {
            continue;
        };
        let Some(&(p, idx)) = pos.get(v.to_string().as_bytes()) else {
            eprintln!(
                "diagnose: read of {v} (never committed) by server {}",
                r.server
            );
            continue;
        };
        for w in &writes {
            let wv = match w.input {
                RegisterInput::Put(x) | RegisterInput::Cas { new: x, .. } => x,
                _ => continue,
            };
            let Some(&(wp, widx)) = pos.get(wv.to_string().as_bytes()) else {
                continue;
            };
            if wp > p && w.ret.is_some_and(|t| t < r.call) && shown < 10 {
                shown += 1;
                eprintln!(
                    "diagnose: {} read {v} (index {idx}) on server {} ({}) at {}..{:?}, but write {wv} (index {widx}) via server {} ({}) was acknowledged at {:?}",
                    key_name(key), r.server, if r.grpc { "gRPC" } else { "HTTP" }, r.call, r.ret,
                    w.server, if w.grpc { "gRPC" } else { "HTTP" }, w.ret
                );
            }
        }
    }
    eprintln!("diagnose: {shown} stale reads shown for {}", key_name(key));
    // Successful CAS writes whose predecessor in commit order is not what they expected.
    for r in records.iter().filter(|r| r.key == key) {
        let (RegisterInput::Cas { expect, new }, RegisterOutput::CasResult(true)) =
            (&r.input, &r.output)
        else {
            continue;
        };
        let Some(&(p, idx)) = pos.get(new.to_string().as_bytes()) else {
            continue;
        };
        let before = if p == 0 {
            None
        } else {
            order[p - 1].value.as_ref().map(|v| parse_value(v))
        };
        if before != *expect {
            eprintln!(
                "diagnose: CAS {expect:?} -> {new} (index {idx}, server {}, {}) succeeded over {before:?} (index {})",
                r.server, if r.grpc { "gRPC" } else { "HTTP" }, if p == 0 { 0 } else { order[p - 1].index }
            );
        }
    }
}

fn check_locks(locks: &LockLog, fenced: &[&Committed], resets: usize) {
    let tokens: HashSet<u64> = locks.acquisitions.iter().map(|a| a.token).collect();
    assert_eq!(
        tokens.len(),
        locks.acquisitions.len(),
        "two acquisitions got the same fencing token"
    );
    // An acquisition that completed before another was requested has the lower token.
    for a in &locks.acquisitions {
        for b in &locks.acquisitions {
            if a.acquired < b.requested {
                assert!(
                    a.token < b.token,
                    "token {} (contender {}) granted after token {} (contender {}) completed",
                    b.token,
                    b.contender,
                    a.token,
                    a.contender
                );
            }
        }
    }
    // The resource's committed writes: tokens never go down, one holder per token.
    let mut holder_of: HashMap<u64, String> = HashMap::new();
    let mut last_token = 0;
    let mut values = HashSet::new();
    for c in fenced {
        let Some(v) = &c.value else { continue };
        let v = String::from_utf8(v.clone()).unwrap();
        let mut parts = v.split(':');
        let token: u64 = parts.next().unwrap().parse().unwrap();
        let holder = parts.next().unwrap().to_string();
        assert!(
            token >= last_token,
            "fenced writes interleaved: token {token} after {last_token}"
        );
        assert!(
            tokens.contains(&token),
            "a fenced write carries token {token}, never granted"
        );
        let first = holder_of.entry(token).or_insert(holder.clone());
        assert_eq!(*first, holder, "two holders wrote with token {token}");
        last_token = token;
        values.insert(v);
    }
    if resets == 0 {
        for w in &locks.writes {
            assert!(
                values.contains(&w.value),
                "acknowledged fenced write {} is not in the committed history",
                w.value
            );
        }
    }
    eprintln!(
        "chaos: {} lock acquisitions, {} fenced writes acknowledged, {} stale holders fenced out",
        locks.acquisitions.len(),
        locks.writes.len(),
        locks.fenced_out
    );
    assert!(
        !locks.acquisitions.is_empty(),
        "no contender ever acquired the lock"
    );
}
