//! The floor for HTTP blocking-query fan-out: a do-nothing axum server that parks every
//! `GET /v1/kv/...?index=` until `PUT /release`, then answers them all. What Rostra
//! needs beyond this to answer the same waiters is the cost of its real work (the wake,
//! the read, the JSON). Run as `rostractl bench floor`, a process of its own, so it
//! shares the machine with the load generator exactly as the agent does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use axum::Router;

#[derive(Clone)]
struct Floor {
    waiting: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<u64>,
}

#[derive(serde::Deserialize)]
struct Params {
    index: Option<u64>,
}

/// Serves on `listen` until killed; prints the bound address on stdout first.
pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let (release, _) = tokio::sync::watch::channel(1u64);
    let state = Floor {
        waiting: Arc::new(AtomicUsize::new(0)),
        release,
    };
    let app = Router::new()
        .route("/v1/kv/{*key}", get(kv))
        .route("/release", put(release_all))
        .route("/waiting", get(waiting))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn kv(State(f): State<Floor>, Query(p): Query<Params>) -> (HeaderMap, &'static str) {
    let mut rx = f.release.subscribe();
    let current = *rx.borrow_and_update();
    if p.index.is_some_and(|i| i >= current) {
        f.waiting.fetch_add(1, Ordering::Relaxed);
        let _ = rx.changed().await;
        f.waiting.fetch_sub(1, Ordering::Relaxed);
    }
    let mut headers = HeaderMap::new();
    let index = *f.release.borrow();
    headers.insert("X-Consul-Index", index.into());
    (headers, "[]")
}

async fn release_all(State(f): State<Floor>) -> &'static str {
    f.release.send_modify(|i| *i += 1);
    "true"
}

async fn waiting(State(f): State<Floor>) -> String {
    f.waiting.load(Ordering::Relaxed).to_string()
}
