//! The two versions an agent reports. Consul client libraries switch behaviour on the
//! agent's `Config.Version` (`/v1/agent/self`), so that field names the Consul release
//! whose HTTP API behaviour this shim implements, and must stay true as the shim changes:
//! raise it only with the behaviour that goes with it. Rostra's own release is reported
//! beside it, never in its place.

/// The Consul release whose HTTP API Rostra answers as (`Config.Version`, member `build`
/// tags, `rostractl members`' Build column).
pub const CONSUL_API_VERSION: &str = "1.17.0";

/// Rostra's own version (`Config.RostraVersion`, `rostra version`).
pub const ROSTRA_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `rostra version` and `rostractl version` print: Consul's layout (a first line
/// naming the version, then the protocol line), with the Consul API level on a line of
/// its own so neither is mistaken for the other.
pub fn describe() -> String {
    format!(
        "Rostra v{ROSTRA_VERSION}\nConsul API compatibility: v{CONSUL_API_VERSION}\nProtocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)\n"
    )
}
