//! The agent's log as a live feed, for Consul's `/v1/agent/monitor` (and `rostractl
//! monitor`): a `tracing` layer that, while someone is listening, formats each event once
//! and broadcasts it.
//!
//! Costs nothing when nobody listens: the layer's filter enables an event only up to the
//! most verbose level a current listener asked for, so with no listener no extra event
//! or span is even built, and the hot paths' debug spans stay off. A listener can ask for
//! more than the agent's own `-log-level` (Consul's monitor does the same).
//!
//! The channel is bounded: a listener that reads too slowly misses lines and is told how
//! many, instead of holding memory or slowing the agent.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Lines a listener may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// One formatted event, in both of Consul's monitor formats.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: Level,
    /// `2026-12-02T21:00:00.123Z [INFO]  target: message: key=value`
    pub text: Arc<str>,
    /// hclog's JSON: `{"@level":"info","@message":…,"@module":…,"@timestamp":…}`
    pub json: Arc<str>,
}

struct Hub {
    sender: broadcast::Sender<LogLine>,
    /// How many listeners want each level (index: 0 error … 4 trace).
    wanted: Mutex<[usize; 5]>,
    /// The most verbose level wanted, as an index + 1 (0: nobody listens).
    max: AtomicUsize,
}

fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| Hub {
        sender: broadcast::channel(BACKLOG).0,
        wanted: Mutex::new([0; 5]),
        max: AtomicUsize::new(0),
    })
}

fn index(level: Level) -> usize {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// Consul's `loglevel` names (hclog's, case-insensitive); None for anything else.
pub fn parse_level(name: &str) -> Option<Level> {
    match name.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" | "warning" => Some(Level::WARN),
        "err" | "error" => Some(Level::ERROR),
        _ => None,
    }
}

/// A listener: lines at `level` or more severe, until it is dropped.
pub struct Listener {
    level: Level,
    receiver: broadcast::Receiver<LogLine>,
}

impl Listener {
    /// The next line at the listener's level; `Err(n)` when `n` lines were missed; None
    /// only if the hub is gone (never, in a running process).
    pub async fn next(&mut self) -> Option<Result<LogLine, u64>> {
        loop {
            match self.receiver.recv().await {
                Ok(line) if line.level <= self.level => return Some(Ok(line)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(Err(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let hub = hub();
        let mut wanted = hub.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted[index(self.level)] -= 1;
        hub.max.store(max_wanted(&wanted), Ordering::Relaxed);
        // Events already enabled or not are re-decided on the next call: the filter
        // answers "sometimes" for every callsite.
    }
}

fn max_wanted(wanted: &[usize; 5]) -> usize {
    wanted.iter().rposition(|n| *n > 0).map_or(0, |i| i + 1)
}

/// Starts listening at `level`.
pub fn listen(level: Level) -> Listener {
    let hub = hub();
    let mut wanted = hub.wanted.lock().unwrap_or_else(|p| p.into_inner());
    wanted[index(level)] += 1;
    hub.max.store(max_wanted(&wanted), Ordering::Relaxed);
    Listener {
        level,
        receiver: hub.sender.subscribe(),
    }
}

/// The layer to add to the process's subscriber (the `rostra` binary does).
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    MonitorLayer.with_filter(Wanted)
}

/// Enables what current listeners want, and nothing when there are none.
struct Wanted;

impl<S> Filter<S> for Wanted {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        // Spans are never formatted; only events are sent.
        meta.is_event() && index(*meta.level()) < hub().max.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

struct MonitorLayer;

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs.push((field.name(), format!("{value:?}")));
        }
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's algorithm),
/// so UTC timestamps need no date crate.
pub(crate) fn civil_date(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// RFC 3339 UTC with milliseconds, as hclog prints, from the system clock.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let hub = hub();
        if hub.sender.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ts = timestamp();
        let level = *meta.level();
        let mut text = format!(
            "{ts} [{}] {}: {}",
            level.as_str(),
            meta.target(),
            fields.message
        );
        let mut json = serde_json::Map::new();
        json.insert("@level".into(), level.as_str().to_ascii_lowercase().into());
        json.insert("@message".into(), fields.message.clone().into());
        json.insert("@module".into(), meta.target().into());
        json.insert("@timestamp".into(), ts.into());
        for (k, v) in fields.pairs {
            let _ = write!(text, ": {k}={v}");
            json.insert(k.into(), v.into());
        }
        let _ = hub.sender.send(LogLine {
            level,
            text: text.into(),
            json: serde_json::Value::Object(json).to_string().into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let ts = timestamp();
        assert_eq!(ts.len(), "2026-12-02T21:00:00.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        let year: u32 = ts[..4].parse().unwrap();
        assert!((2024..3000).contains(&year), "{ts}");
    }

    #[test]
    fn levels_parse_as_hclog_names_them() {
        assert_eq!(parse_level("WARN"), Some(Level::WARN));
        assert_eq!(parse_level("warning"), Some(Level::WARN));
        assert_eq!(parse_level("trace"), Some(Level::TRACE));
        assert_eq!(parse_level("loud"), None);
    }

    /// Listeners get what they asked for, formatted both ways; the filter enables only
    /// up to the most verbose level a listener wants, and nothing without one.
    #[tokio::test]
    async fn listeners_hear_their_level_and_silence_enables_nothing() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        let wanted = || hub().max.load(Ordering::Relaxed);
        assert_eq!(wanted(), 0, "no listener: no level is enabled");
        let mut warn = listen(Level::WARN);
        assert_eq!(wanted(), index(Level::WARN) + 1);
        let mut debug = listen(Level::DEBUG);
        assert_eq!(wanted(), index(Level::DEBUG) + 1);
        tracing::trace!(target: "rostra::test", "too verbose for anyone");
        tracing::info!(target: "rostra::test", port = 8500, "listening");
        tracing::warn!(target: "rostra::test", "disk nearly full");
        let line = debug.next().await.unwrap().unwrap();
        assert!(
            line.text
                .ends_with("[INFO] rostra::test: listening: port=8500"),
            "{}",
            line.text
        );
        let json: serde_json::Value = serde_json::from_str(&line.json).unwrap();
        assert_eq!(json["@level"], "info");
        assert_eq!(json["@message"], "listening");
        assert_eq!(json["@module"], "rostra::test");
        assert_eq!(json["port"], "8500");
        assert!(debug
            .next()
            .await
            .unwrap()
            .unwrap()
            .text
            .contains("disk nearly full"));
        // The WARN listener skipped the info line.
        let line = warn.next().await.unwrap().unwrap();
        assert!(
            line.text.contains("[WARN] rostra::test: disk nearly full"),
            "{}",
            line.text
        );
        drop(debug);
        assert_eq!(wanted(), index(Level::WARN) + 1);
        drop(warn);
        assert_eq!(wanted(), 0);
    }
}
