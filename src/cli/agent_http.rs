//! The Consul CLI commands that go with the agent's HTTP endpoints: `catalog
//! datacenters|nodes|services`, `services register|deregister`, `maint`, `reload`,
//! `monitor` and `info`. Each is a thin client of the HTTP API (`-http-addr`, or
//! `CONSUL_HTTP_ADDR`, as Consul's commands), printing what Consul's print.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use super::args::{
    CatalogCommand, CatalogNodesArgs, CatalogServicesArgs, HttpAddr, InfoArgs, MaintArgs,
    MonitorArgs, ServicesCommand, ServicesRegisterArgs,
};
use super::table;

/// An agent's HTTP API as Consul's CLI reaches it.
struct Agent {
    base: String,
    http: reqwest::Client,
}

impl Agent {
    fn new(addr: &HttpAddr) -> Agent {
        let a = addr.http_addr.trim_end_matches('/');
        let base = if a.starts_with("http://") || a.starts_with("https://") {
            a.to_string()
        } else {
            format!("http://{a}")
        };
        Agent {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("Error connecting to Consul agent: {e}"))?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            bail!("Unexpected response code: {code} ({})", text.trim_end());
        }
        Ok(resp)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.send(reqwest::Method::GET, path, None).await?;
        resp.json()
            .await
            .map_err(|e| anyhow!("Error querying Consul agent: {e}"))
    }

    async fn put(&self, path: &str, body: Option<String>) -> anyhow::Result<()> {
        self.send(reqwest::Method::PUT, path, body).await.map(drop)
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `k=v` pairs of a JSON object, sorted, comma-separated (Consul's `-detailed` cells).
fn pairs(v: &Value) -> String {
    v.as_object()
        .map(|o| {
            let sorted: BTreeMap<&String, String> = o.iter().map(|(k, v)| (k, text(v))).collect();
            sorted
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn catalog(cmd: CatalogCommand, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    match cmd {
        CatalogCommand::Datacenters(a) => {
            let dcs = Agent::new(&a).get("/v1/catalog/datacenters").await?;
            for dc in dcs.as_array().into_iter().flatten() {
                writeln!(out, "{}", text(dc))?;
            }
            Ok(())
        }
        CatalogCommand::Nodes(a) => catalog_nodes(a, out).await,
        CatalogCommand::Services(a) => catalog_services(a, out).await,
    }
}

async fn catalog_nodes(a: CatalogNodesArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let agent = Agent::new(&a.http);
    let q = query(&[
        ("dc", &a.datacenter),
        ("filter", &a.filter),
        ("near", &a.near),
    ]);
    let nodes: Vec<Value> = match a.service.as_deref().filter(|s| !s.is_empty()) {
        // The nodes providing a service, once each, in the catalog's order.
        Some(service) => {
            let instances = agent
                .get(&format!("/v1/catalog/service/{}{q}", urlencode(service)))
                .await?;
            let mut seen = std::collections::BTreeSet::new();
            instances
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| seen.insert(text(&i["Node"])))
                .map(|i| {
                    json!({"Node": i["Node"], "ID": i["ID"], "Address": i["Address"],
                           "Datacenter": i["Datacenter"], "TaggedAddresses": i["TaggedAddresses"],
                           "Meta": i["NodeMeta"]})
                })
                .collect()
        }
        None => agent
            .get(&format!("/v1/catalog/nodes{q}"))
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    if nodes.is_empty() {
        // Consul prints this to stderr and still exits 0.
        eprintln!("No nodes match the given query - try expanding your search.");
        return Ok(());
    }
    let mut rows = vec![if a.detailed {
        ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"]
            .map(String::from)
            .to_vec()
    } else {
        ["Node", "ID", "Address", "DC"].map(String::from).to_vec()
    }];
    for n in &nodes {
        let id = text(&n["ID"]);
        let mut row = vec![
            text(&n["Node"]),
            if a.detailed {
                id
            } else {
                id.chars().take(8).collect()
            },
            text(&n["Address"]),
            text(&n["Datacenter"]),
        ];
        if a.detailed {
            row.push(pairs(&n["TaggedAddresses"]));
            row.push(pairs(&n["Meta"]));
        }
        rows.push(row);
    }
    table(&rows, out)
}

async fn catalog_services(
    a: CatalogServicesArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let agent = Agent::new(&a.http);
    let q = query(&[("dc", &a.datacenter), ("filter", &a.filter)]);
    // Name to tags, sorted by name.
    let services: BTreeMap<String, Vec<String>> = match a.node.as_deref().filter(|n| !n.is_empty())
    {
        Some(node) => {
            let found = agent
                .get(&format!("/v1/catalog/node/{}{q}", urlencode(node)))
                .await?;
            if found.is_null() {
                bail!("Error listing services for node: No node named {node:?}");
            }
            let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in found["Services"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
            {
                let tags = by_name.entry(text(&s["Service"])).or_default();
                for t in s["Tags"].as_array().into_iter().flatten() {
                    if !tags.contains(&text(t)) {
                        tags.push(text(t));
                    }
                }
            }
            by_name
        }
        None => agent
            .get(&format!("/v1/catalog/services{q}"))
            .await?
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array().into_iter().flatten().map(text).collect(),
                )
            })
            .collect(),
    };
    if services.is_empty() {
        eprintln!("No services match the given query - try expanding your search.");
        return Ok(());
    }
    if a.tags {
        let rows: Vec<Vec<String>> = services
            .into_iter()
            .map(|(name, mut tags)| {
                tags.sort();
                vec![name, tags.join(",")]
            })
            .collect();
        return table(&rows, out);
    }
    for name in services.keys() {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn services(cmd: ServicesCommand, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    match cmd {
        ServicesCommand::Register(a) => {
            let agent = Agent::new(&a.http);
            for def in service_definitions(&a)? {
                let name = field(&def, "name");
                agent
                    .put("/v1/agent/service/register", Some(def.to_string()))
                    .await
                    .map_err(|e| anyhow!("Error registering service {name:?}: {e}"))?;
                writeln!(out, "Registered service: {name}")?;
            }
            Ok(())
        }
        ServicesCommand::Deregister(a) => {
            let agent = Agent::new(&a.http);
            let ids: Vec<String> = match (&a.id, a.files.is_empty()) {
                (Some(id), true) => vec![id.clone()],
                (None, false) => {
                    let defs = definitions_from_files(&a.files)?;
                    defs.iter()
                        .map(|d| {
                            let id = field(d, "id");
                            if id.is_empty() {
                                field(d, "name")
                            } else {
                                id
                            }
                        })
                        .collect()
                }
                (Some(_), false) => {
                    bail!("Only one of -id or a service definition file may be given")
                }
                (None, true) => bail!("A service ID or a service definition file is required"),
            };
            for id in ids {
                agent
                    .put(
                        &format!("/v1/agent/service/deregister/{}", urlencode(&id)),
                        None,
                    )
                    .await
                    .map_err(|e| anyhow!("Error deregistering service {id:?}: {e}"))?;
                writeln!(out, "Deregistered service: {id}")?;
            }
            Ok(())
        }
    }
}

/// A definition's field, its key in any case (config files write `name`, the API `Name`).
fn field(d: &Value, key: &str) -> String {
    d.as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(_, v)| text(v))
        .unwrap_or_default()
}

/// Service definitions in a file as Consul's config files hold them: `{"service": {…}}`,
/// `{"services": […]}`, or the bare definition.
fn definitions_from_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut defs = Vec::new();
    for file in files {
        let data = std::fs::read_to_string(file)
            .with_context(|| format!("Error reading {}", file.display()))?;
        let v: Value = serde_json::from_str(&data)
            .map_err(|e| anyhow!("Error parsing {}: {e}", file.display()))?;
        let found = |k: &str| {
            v.as_object()
                .and_then(|o| o.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
                .map(|(_, v)| v.clone())
        };
        match (found("service"), found("services")) {
            (Some(s), _) if s.is_object() => defs.push(s),
            (_, Some(Value::Array(list))) => defs.extend(list),
            (None, None) if v.is_object() => defs.push(v.clone()),
            _ => bail!(
                "{}: no service definition found (expected \"service\" or \"services\")",
                file.display()
            ),
        }
    }
    for d in &defs {
        if field(d, "name").is_empty() {
            bail!("Service definition is missing a name");
        }
    }
    Ok(defs)
}

/// `services register`'s definitions: the files, or one built from the flags.
fn service_definitions(a: &ServicesRegisterArgs) -> anyhow::Result<Vec<Value>> {
    if !a.files.is_empty() {
        if a.name.is_some() {
            bail!("Only one of -name or a service definition file may be given");
        }
        return Ok(definitions_from_files(&a.files)?
            .into_iter()
            .map(|d| {
                // The agent endpoint wants `Name`; files may spell it in any case.
                let mut o = d.as_object().cloned().unwrap_or_default();
                if let Some(k) = o
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case("name") && *k != "Name")
                    .cloned()
                {
                    let v = o.remove(&k).unwrap_or_default();
                    o.insert("Name".into(), v);
                }
                Value::Object(o)
            })
            .collect());
    }
    let name = a.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
        anyhow!("A service name (-name) or a service definition file is required")
    })?;
    let mut meta = serde_json::Map::new();
    for m in &a.meta {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| anyhow!("Invalid -meta {m:?}: expected key=value"))?;
        meta.insert(k.into(), v.into());
    }
    let mut def = json!({"Name": name, "Tags": a.tag, "Meta": meta, "Port": a.port});
    if let Some(id) = a.id.as_ref().filter(|i| !i.is_empty()) {
        def["ID"] = json!(id);
    }
    if let Some(addr) = a.address.as_ref().filter(|x| !x.is_empty()) {
        def["Address"] = json!(addr);
    }
    Ok(vec![def])
}

pub async fn maint(a: MaintArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let agent = Agent::new(&a.http);
    if a.enable && a.disable {
        bail!("Only one of -enable or -disable may be provided");
    }
    if !a.enable && a.reason.is_some() {
        bail!("Reason may only be provided with -enable");
    }
    if !a.enable && !a.disable {
        if a.service.is_some() {
            bail!("Service requires either -enable or -disable");
        }
        // No flags: list what is in maintenance (Consul's output).
        let checks = agent.get("/v1/agent/checks").await?;
        for c in checks.as_object().into_iter().flat_map(|o| o.values()) {
            let id = text(&c["CheckID"]);
            if id == crate::agent::NODE_MAINTENANCE {
                writeln!(
                    out,
                    "Node:\n  Name:   {}\n  Reason: {}",
                    text(&c["Node"]),
                    text(&c["Notes"])
                )?;
            } else if let Some(service) = id.strip_prefix(crate::agent::SERVICE_MAINTENANCE_PREFIX)
            {
                writeln!(
                    out,
                    "Service:\n  ID:     {service}\n  Reason: {}",
                    text(&c["Notes"])
                )?;
            }
        }
        return Ok(());
    }
    let enable = if a.enable { "true" } else { "false" };
    let reason = a.reason.clone().unwrap_or_default();
    let state = if a.enable { "enabled" } else { "disabled" };
    match a.service.as_deref() {
        Some(id) => {
            agent
                .put(
                    &format!(
                        "/v1/agent/service/maintenance/{}{}",
                        urlencode(id),
                        query(&[("enable", enable), ("reason", &reason)])
                    ),
                    None,
                )
                .await?;
            writeln!(out, "Service maintenance is now {state} for {id:?}")?;
        }
        None => {
            agent
                .put(
                    &format!(
                        "/v1/agent/maintenance{}",
                        query(&[("enable", enable), ("reason", &reason)])
                    ),
                    None,
                )
                .await?;
            writeln!(out, "Node maintenance is now {state}")?;
        }
    }
    Ok(())
}

pub async fn reload(a: HttpAddr, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    Agent::new(&a)
        .put("/v1/agent/reload", None)
        .await
        .map_err(|e| anyhow!("Error reloading: {e}"))?;
    writeln!(out, "Configuration reload triggered")?;
    Ok(())
}

pub async fn monitor(a: MonitorArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let agent = Agent::new(&a.http);
    let level = a.log_level.clone();
    let mut pairs = vec![("loglevel", level.as_str())];
    if a.log_json {
        pairs.push(("logjson", "true"));
    }
    let mut resp = agent
        .send(
            reqwest::Method::GET,
            &format!("/v1/agent/monitor{}", query(&pairs)),
            None,
        )
        .await
        .map_err(|e| anyhow!("Error starting monitor: {e}"))?;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| anyhow!("Error reading the agent's log: {e}"))?
    {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    // The agent closed the stream: it is shutting down.
    writeln!(out, "Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.")?;
    Ok(())
}

/// `info`: the agent's `Stats`, section by section, as Consul prints them.
pub async fn info(a: InfoArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let me = Agent::new(&a.http).get("/v1/agent/self").await?;
    let stats = me["Stats"]
        .as_object()
        .ok_or_else(|| anyhow!("Error querying agent: no Stats in /v1/agent/self"))?;
    let sorted: BTreeMap<&String, &Value> = stats.iter().collect();
    for (section, values) in sorted {
        writeln!(out, "{section}:")?;
        let values: BTreeMap<&String, String> = values
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, text(v)))
            .collect();
        for (k, v) in values {
            writeln!(out, "\t{k} = {v}")?;
        }
    }
    Ok(())
}
