//! User events (Consul's `/v1/event`, gRPC `Event`): the rules for what may be fired
//! (name, filters, payload limit), the list as a receiving agent sees it (events whose
//! filters match this agent's node, services and tags), and retention as a leader duty.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::query::QueryOptions;
use super::{ResponseMeta, Service, ServiceError};
use crate::state::event::{Event, EVENTS_TOPIC};
use crate::state::{Command, CommandResult, WatchTarget};

/// Consul's 512-byte user event limit, applied to the payload.
pub const DEFAULT_MAX_PAYLOAD: usize = 512;
/// Consul's event buffer: the last 256 events.
pub const DEFAULT_RETENTION: usize = 256;

/// An event as a front end decoded it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FireArgs {
    pub name: String,
    pub payload: Vec<u8>,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
}

fn compile(kind: &str, re: &str) -> Result<Option<regex::Regex>, ServiceError> {
    if re.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(re)
        .map(Some)
        .map_err(|e| ServiceError::InvalidArgument(format!("Invalid {kind} filter: {e}")))
}

/// Consul's `uuidToUint64`: the list's `X-Consul-Index` is derived from the newest
/// event's ID (bit-exact: Consul's watch recomputes it from IDs).
pub fn uuid_to_u64(id: &str) -> u64 {
    let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok()).unwrap_or(0);
    let lo = hex(id.get(0..8)) << 32 | hex(id.get(9..13)) << 16 | hex(id.get(14..18));
    let hi = hex(id.get(19..23)) << 48 | hex(id.get(24..36));
    lo ^ hi
}

/// Whether `event`'s filters match an agent: its node name, one of its services (name,
/// tags), and with a tag filter one of that service's tags (Consul's
/// `shouldProcessUserEvent`). A filter that does not compile matches nothing (fire
/// refuses those, so only an event from elsewhere could carry one).
pub fn event_matches<'a>(
    event: &Event,
    node: &str,
    services: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> bool {
    let re = |r: &str| regex::Regex::new(r).ok();
    if !node_matches(event, node) {
        return false;
    }
    if event.service_filter.is_empty() {
        return true;
    }
    let Some(svc) = re(&event.service_filter) else {
        return false;
    };
    let tag = (!event.tag_filter.is_empty()).then(|| re(&event.tag_filter));
    services
        .into_iter()
        .filter(|(name, _)| svc.is_match(name))
        .any(|(_, tags)| match &tag {
            None => true,
            Some(Some(t)) => tags.iter().any(|x| t.is_match(x)),
            Some(None) => false,
        })
}

/// Whether `event`'s node filter (if any) matches `node`; the part of
/// [`event_matches`] that needs no knowledge of the node's services.
pub fn node_matches(event: &Event, node: &str) -> bool {
    event.node_filter.is_empty()
        || regex::Regex::new(&event.node_filter).is_ok_and(|r| r.is_match(node))
}

impl Service {
    /// Consul's `PUT /v1/event/fire/<name>`: the event as stored.
    pub async fn event_fire(&self, args: FireArgs) -> Result<(ResponseMeta, Event), ServiceError> {
        let invalid = |m: String| Err(ServiceError::InvalidArgument(m));
        if args.name.is_empty() {
            return invalid("Missing name".into());
        }
        if args.name.contains('/') {
            return invalid(format!(
                "Invalid event name {:?}: it must not contain '/'",
                args.name
            ));
        }
        if !args.tag_filter.is_empty() && args.service_filter.is_empty() {
            return invalid("Cannot provide tag filter without service filter".into());
        }
        compile("node", &args.node_filter)?;
        compile("service", &args.service_filter)?;
        compile("tag", &args.tag_filter)?;
        let max = self.limits.event_max_payload;
        if args.payload.len() > max {
            return Err(ServiceError::TooLarge(format!(
                "user event exceeds configured limit of {max} bytes before encoding ({} byte payload)",
                args.payload.len()
            )));
        }
        let event = Event {
            id: super::session::random_uuid(),
            name: args.name,
            payload: args.payload,
            node_filter: args.node_filter,
            service_filter: args.service_filter,
            tag_filter: args.tag_filter,
            ltime: 0,
        };
        let (index, result) = self.raft.write(Command::EventFire(event)).await?;
        match result {
            CommandResult::Event(e) => Ok((self.meta(index), e)),
            other => Err(ServiceError::Internal(format!(
                "event fire applied as {other:?}"
            ))),
        }
    }

    /// Consul's `GET /v1/event/list?name=`: the retained events that match this agent,
    /// oldest first, and Consul's index (from the newest one's ID). With `opts.min_index`
    /// equal to that index, waits for a newer event or the wait's end.
    pub async fn event_list(
        &self,
        name: Option<String>,
        opts: &QueryOptions,
    ) -> Result<(u64, Vec<Event>), ServiceError> {
        self.event_list_for(name, self.node_name.clone(), opts)
            .await
    }

    /// [`Self::event_list`] as the agent on `node` sees it (a client agent asks its
    /// server for its own node's events).
    pub async fn event_list_for(
        &self,
        name: Option<String>,
        node: String,
        opts: &QueryOptions,
    ) -> Result<(u64, Vec<Event>), ServiceError> {
        let _permit = (opts.min_index > 0)
            .then(|| self.stream_permit())
            .transpose()?;
        let mut sub = (opts.min_index > 0).then(|| {
            self.feed
                .subscribe(WatchTarget::Topic(EVENTS_TOPIC.into()), None)
                .0
        });
        let deadline = tokio::time::Instant::now() + opts.wait;
        loop {
            let at = node.clone();
            let (events, services) = self
                .blocking_read(move |s| {
                    let view = s.view();
                    Ok((view.events().list()?, view.catalog().node_services(&at)?))
                })
                .await?;
            let events: Vec<Event> = events
                .into_iter()
                .filter(|e| name.as_ref().is_none_or(|n| &e.name == n))
                .filter(|e| {
                    let services = services.iter().map(|s| (s.name.as_str(), &s.tags[..]));
                    event_matches(e, &node, services)
                })
                .collect();
            let index = events.last().map_or(1, |e| uuid_to_u64(&e.id));
            let Some(s) = sub.as_mut().filter(|_| index == opts.min_index) else {
                return Ok((index, events));
            };
            tokio::select! {
                _ = s.recv() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok((index, events)),
                _ = self.shutdown.cancelled() => return Ok((index, events)),
            }
        }
    }
}

/// Event retention, a leader duty: after each fired event, trims the table to the
/// newest `limits.event_retention` events.
pub async fn run_event_trimmer(service: Arc<Service>, leading: CancellationToken) {
    let mut sub = service
        .feed
        .subscribe_internal(WatchTarget::Topic(EVENTS_TOPIC.into()));
    let keep = service.limits.event_retention.max(1);
    loop {
        let fired = tokio::select! {
            _ = leading.cancelled() => return,
            ev = sub.recv() => ev,
        };
        if fired.is_err() {
            // Dropped from the feed: follow again (a trim below covers what was missed).
            sub = service
                .feed
                .subscribe_internal(WatchTarget::Topic(EVENTS_TOPIC.into()));
        }
        let listed = service.blocking_read(|s| s.view().events().list()).await;
        let Ok(events) = listed else { continue };
        if events.len() <= keep {
            continue;
        }
        let up_to = events[events.len() - keep - 1].ltime;
        if let Err(e) = service.raft.write(Command::EventTrim { up_to }).await {
            tracing::warn!(error = %e, "trimming user events");
            tokio::select! {
                _ = leading.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuls_uuid_index() {
        assert_eq!(
            uuid_to_u64("b54fe110-7af5-cafc-d1fb-afc8ba432b1c"),
            7256511592453824992
        );
    }

    #[test]
    fn filters_match_node_service_and_tag() {
        let event = |node: &str, service: &str, tag: &str| Event {
            node_filter: node.into(),
            service_filter: service.into(),
            tag_filter: tag.into(),
            ..Event::default()
        };
        let tags = ["v1".to_string(), "blue".to_string()];
        let web = [("web", &tags[..])];
        assert!(event_matches(&event("", "", ""), "a", web));
        assert!(event_matches(&event("^a$", "", ""), "a", web));
        assert!(!event_matches(&event("^b$", "", ""), "a", web));
        assert!(event_matches(&event("", "^we", ""), "a", web));
        assert!(!event_matches(&event("", "db", ""), "a", web));
        assert!(event_matches(&event("", "web", "blu"), "a", web));
        assert!(!event_matches(&event("", "web", "green"), "a", web));
        assert!(!event_matches(&event("", "web", ""), "a", []));
        assert!(
            !event_matches(&event("^a$", "db", ""), "a", web),
            "both must match"
        );
    }
}
