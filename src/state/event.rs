//! User events (Consul's `/v1/event`): unlike Consul's gossip, each event is a raft entry,
//! so every server and agent sees the same events in the same order and none is lost
//! while an agent is away. An event's Lamport time (`LTime`) is a counter applied with it,
//! strictly increasing; the table keeps the most recent ones (the leader trims it).

use serde::{Deserialize, Serialize};

use super::apply::{ApplyBatch, RawRead};
use super::change::Change;
use super::store::StoreError;
use crate::db::{CF_EVENTS, CF_SM_META};

/// `sm_meta` key of the last Lamport time handed out.
pub(super) const EVENTS_LTIME_KEY: &[u8] = b"events_ltime";

/// Topic of every event.
pub const EVENTS_TOPIC: &str = "event";

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// A random UUID, chosen when fired.
    pub id: String,
    pub name: String,
    pub payload: Vec<u8>,
    /// Regular expressions a receiving agent matches against its node name, its services
    /// and their tags (empty: any).
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    /// Assigned by apply.
    pub ltime: u64,
}

/// Event reads over any raw view.
pub struct EventRead<'r, R: RawRead>(pub &'r R);

impl<R: RawRead> EventRead<'_, R> {
    /// Every retained event, oldest first.
    pub fn list(&self) -> Result<Vec<Event>, StoreError> {
        self.0
            .scan_raw(CF_EVENTS, b"")?
            .into_iter()
            .map(|(_, v)| Ok(postcard::from_bytes(&v)?))
            .collect()
    }

    pub fn get(&self, ltime: u64) -> Result<Option<Event>, StoreError> {
        match self.0.get_raw(CF_EVENTS, &ltime.to_be_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }
}

/// Stores `event` with the next Lamport time; returns it as stored.
pub fn fire(ab: &mut ApplyBatch<'_>, event: &Event) -> Result<(Event, Change), StoreError> {
    let last = ab
        .get_raw(CF_SM_META, EVENTS_LTIME_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let stored = Event {
        ltime: last + 1,
        ..event.clone()
    };
    ab.put_raw(
        CF_SM_META,
        EVENTS_LTIME_KEY.to_vec(),
        stored.ltime.to_be_bytes().to_vec(),
    );
    ab.put_raw(
        CF_EVENTS,
        stored.ltime.to_be_bytes().to_vec(),
        postcard::to_stdvec(&stored).expect("events always encode"),
    );
    let change = Change::Event {
        ltime: stored.ltime,
        name: stored.name.clone(),
        event: Some(stored.clone()),
    };
    Ok((stored, change))
}

/// Drops the events with Lamport time at or below `up_to`.
pub fn trim(ab: &mut ApplyBatch<'_>, up_to: u64) -> Result<Vec<Change>, StoreError> {
    let mut changes = Vec::new();
    for (k, v) in ab.scan_raw(CF_EVENTS, b"")? {
        let e: Event = postcard::from_bytes(&v)?;
        if e.ltime > up_to {
            break;
        }
        ab.delete_raw(CF_EVENTS, k);
        changes.push(Change::Event {
            ltime: e.ltime,
            name: e.name,
            event: None,
        });
    }
    Ok(changes)
}
