"""Drives Rostra's HTTP shim with the real py-consul client library (PyPI `py-consul`).

Run by tests/py_consul.rs against a live server; CONSUL_HTTP_ADDR is host:port.
Exits non-zero (an AssertionError traceback) on the first mismatch.
"""
import base64
import os
import threading

import consul

host, port = os.environ["CONSUL_HTTP_ADDR"].rsplit(":", 1)
c = consul.Consul(host=host, port=int(port))

# Status probes clients make on connect.
assert c.status.leader() != ""
assert len(c.status.peers()) == 1
me = c.agent.self()
assert me["Config"]["Datacenter"] == "dc1"
# The Consul version clients switch behaviour on, and this node as a member of the list.
assert me["Config"]["Version"] == "1.17.0", me["Config"]
assert sorted(me) == ["Config", "Coord", "DebugConfig", "Member", "Meta", "Stats", "xDS"], sorted(me)
assert me["Member"] in c.agent.members(), me["Member"]
assert c.agent.members(wan=True)[0]["Name"] == me["Config"]["NodeName"] + ".dc1"

# put/get, missing keys, flags beyond 2^53.
assert c.kv.put("py/foo", "bar") is True
index, data = c.kv.get("py/foo")
assert data["Value"] == b"bar", data
assert data["Key"] == "py/foo"
assert int(index) == data["ModifyIndex"]
index, data = c.kv.get("py/missing")
assert data is None and int(index) > 0
assert c.kv.put("py/flags", "x", flags=16210313421097356768) is True
assert c.kv.get("py/flags")[1]["Flags"] == 16210313421097356768

# cas: 0 creates only; a stale index fails; the current one succeeds.
assert c.kv.put("py/foo", "nope", cas=0) is False
modify = c.kv.get("py/foo")[1]["ModifyIndex"]
assert c.kv.put("py/foo", "nope", cas=modify + 1000) is False
assert c.kv.put("py/foo", "baz", cas=modify) is True
assert c.kv.get("py/foo")[1]["Value"] == b"baz"

# recurse and keys.
for k in ["py/dir/a", "py/dir/b", "py/dir/sub/c"]:
    assert c.kv.put(k, k) is True
_, items = c.kv.get("py/dir/", recurse=True)
assert [i["Key"] for i in items] == ["py/dir/a", "py/dir/b", "py/dir/sub/c"], items
_, keys = c.kv.get("py/dir/", keys=True, separator="/")
assert keys == ["py/dir/a", "py/dir/b", "py/dir/sub/"], keys
_, keys = c.kv.get("py/dir/", keys=True)
assert keys == ["py/dir/a", "py/dir/b", "py/dir/sub/c"], keys

# stale and consistent reads.
assert consul.Consul(host=host, port=int(port), consistency="stale").kv.get("py/foo")[1]["Value"] == b"baz"
assert c.kv.get("py/foo", consistency="consistent")[1]["Value"] == b"baz"

# A blocking index loop, as Consul clients write it: block on the last index; an early
# answer (legal: for a missing key the index is the KV table's) just loops again.
index, _ = c.kv.get("py/watched")
result = {}


def wait_for_change():
    last, data = index, None
    while data is None:
        last, data = c.kv.get("py/watched", index=last, wait="30s")
    result["answer"] = (last, data)


t = threading.Thread(target=wait_for_change)
t.start()
assert c.kv.put("py/other", "noise") is True
assert c.kv.put("py/watched", "hello") is True
t.join(60)
assert not t.is_alive(), "blocking query did not return"
new_index, data = result["answer"]
assert int(new_index) > int(index)
assert data["Value"] == b"hello"
# ... and with an unchanged index it times out with the same index.
same_index, data = c.kv.get("py/watched", index=new_index, wait="1s")
assert int(same_index) == int(new_index) and data["Value"] == b"hello"

# Transactions.
b64 = lambda s: base64.b64encode(s.encode()).decode()
res = c.txn.put([
    {"KV": {"Verb": "set", "Key": "py/txn/a", "Value": b64("1")}},
    {"KV": {"Verb": "set", "Key": "py/txn/b", "Value": b64("2")}},
    {"KV": {"Verb": "get", "Key": "py/txn/a"}},
])
assert res["Errors"] is None, res
assert base64.b64decode(res["Results"][2]["KV"]["Value"]) == b"1"
try:
    c.txn.put([
        {"KV": {"Verb": "set", "Key": "py/txn/c", "Value": b64("3")}},
        {"KV": {"Verb": "check-not-exists", "Key": "py/txn/a"}},
    ])
    raise AssertionError("a failing transaction must not succeed")
except consul.ConsulException as e:
    assert "py/txn/a" in str(e), e
assert c.kv.get("py/txn/c")[1] is None

# delete: plain, cas, recurse.
assert c.kv.delete("py/foo") is True
assert c.kv.get("py/foo")[1] is None
modify = c.kv.get("py/dir/a")[1]["ModifyIndex"]
assert c.kv.delete("py/dir/a", cas=modify + 1) is False
assert c.kv.delete("py/dir/a", cas=modify) is True
assert c.kv.delete("py/dir/", recurse=True) is True
assert c.kv.get("py/dir/", recurse=True)[1] is None

# Agent, catalog and health, as py-consul's own API exposes them.
assert c.agent.service.register("pysvc", service_id="pysvc1", port=1234, tags=["a", "b"],
                                check=consul.Check.ttl("60s")) is True
assert "pysvc1" in c.agent.services()
assert c.agent.check.ttl_pass("service:pysvc1", notes="fine") is True
assert c.agent.checks()["service:pysvc1"]["Status"] == "passing"


def until(what, pred):
    index = None
    for _ in range(200):
        index, value = pred(index)
        if value:
            return value
    raise AssertionError("never: " + what)


def service_passing(index):
    # A blocking loop on health.service, as py-consul users write it.
    idx, nodes = c.health.service("pysvc", index=index, wait="5s", passing=True)
    return idx, nodes


entries = until("pysvc passes in the catalog", service_passing)
assert entries[0]["Service"]["Port"] == 1234
assert sorted(entries[0]["Service"]["Tags"]) == ["a", "b"]
assert any(ch["CheckID"] == "service:pysvc1" and ch["Output"] == "fine" for ch in entries[0]["Checks"])
_, instances = c.catalog.service("pysvc")
assert instances[0]["ServiceID"] == "pysvc1" and instances[0]["ServicePort"] == 1234
_, instances = c.catalog.service("pysvc", tag="a")
assert len(instances) == 1
_, services = c.catalog.services()
assert sorted(services["pysvc"]) == ["a", "b"] and "consul" in services
_, nodes = c.catalog.nodes()
node_name = c.agent.self()["Config"]["NodeName"]
assert any(n["Node"] == node_name for n in nodes)
_, node = c.catalog.node(node_name)
assert "pysvc1" in node["Services"]
_, checks = c.health.node(node_name)
assert any(ch["CheckID"] == "serfHealth" for ch in checks)
_, critical = c.health.state("critical")
assert all(ch["Status"] == "critical" for ch in critical)
assert any(m["Name"] == node_name for m in c.agent.members())

# A catalog registration of an external node, then its removal.
assert c.catalog.register("ext1", "10.9.9.9", service={"Service": "extsvc", "Port": 99}) is True
assert c.catalog.service("extsvc")[1][0]["Address"] == "10.9.9.9"
assert c.catalog.deregister("ext1") is True
assert c.catalog.service("extsvc")[1] == []

# Maintenance mode, for one instance and for the whole node: out of ?passing, then back.
assert c.agent.service.maintenance("pysvc1", "true", reason="upgrade") is True
assert c.agent.checks()["_service_maintenance:pysvc1"]["Notes"] == "upgrade"
until("pysvc leaves ?passing", lambda i: (None, c.health.service("pysvc", passing=True)[1] == []))
assert c.agent.service.maintenance("pysvc1", "false") is True
until("pysvc passes again", service_passing)
assert c.agent.maintenance("true", reason="kernel") is True
assert c.agent.checks()["_node_maintenance"]["Status"] == "critical"
until("the node leaves ?passing", lambda i: (None, c.health.service("pysvc", passing=True)[1] == []))
assert c.agent.maintenance("false") is True
until("the node passes again", service_passing)

# Filters in Consul's grammar, per instance on catalog services.
_, services = c.catalog.services(filter_expr='"a" in ServiceTags and ServiceName matches "^py"')
assert services == {"pysvc": ["a", "b"]}, services

# Features Rostra lacks answer as Consul's with them unused.
assert c.health.connect("pysvc")[1] == []
try:
    c.acl.token.list()
    raise AssertionError("ACL calls must fail while ACLs are off")
except consul.ACLDisabled:
    pass

assert c.agent.service.deregister("pysvc1") is True
assert "pysvc1" not in c.agent.services()

# Sessions and locks, as py-consul's session and kv acquire/release drive them.
sid = c.session.create(name="py-lock", lock_delay=0, ttl=30)
_, info = c.session.info(sid)
assert info["Name"] == "py-lock" and info["TTL"] == "30s" and info["Node"] == node_name, info
assert any(s["ID"] == sid for s in c.session.list()[1])
assert any(s["ID"] == sid for s in c.session.node(node_name)[1])
other = c.session.create(behavior="delete", lock_delay=0)
assert c.kv.put("py/lock", "mine", acquire=sid) is True
assert c.kv.put("py/lock", "theirs", acquire=other) is False
_, data = c.kv.get("py/lock")
assert data["Session"] == sid and data["LockIndex"] == 1, data
assert c.kv.put("py/lock", "done", release=sid) is True
assert "Session" not in c.kv.get("py/lock")[1]
renewed = c.session.renew(sid)
assert renewed["ID"] == sid, renewed
assert c.kv.put("py/eph", "x", acquire=other) is True
assert c.session.destroy(other) is True
assert c.kv.get("py/eph")[1] is None, "behavior=delete removed the key"
assert c.session.destroy(sid) is True
assert c.session.info(sid)[1] is None
try:
    c.session.renew(sid)
    raise AssertionError("renewing a destroyed session must fail")
except consul.NotFound:
    pass  # Consul's 404 `Session id '<id>' not found`

print("py-consul: all checks passed")
