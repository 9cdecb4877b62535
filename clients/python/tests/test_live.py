"""The client against a live server: KV with CAS, a prefix watch across an agent
restart, a RESET after compaction, two processes contending for a lock, events,
catalog and health watches; and the asyncio client."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from typing import Any

import grpc
import pytest

import rostra
from rostra.v1 import catalog_pb2

from conftest import Agent, Proxy, wait_until


def test_put_get_cas_delete(agent: Agent) -> None:
    with rostra.Client(agent.grpc_addr) as c:
        assert c.kv.put("app/config", "v1")
        kv = c.kv.get("app/config")
        assert kv is not None and kv.value == b"v1"
        assert not c.kv.put("app/config", "v2", cas=kv.modify_index + 1000)
        assert c.kv.put("app/config", "v2", cas=kv.modify_index)
        assert not c.kv.put("app/config", "v3", cas=0), "cas=0 writes only if absent"
        assert c.kv.get("app/config").value == b"v2"  # type: ignore[union-attr]
        assert [p.key for p in c.kv.list("app/")] == ["app/config"]
        assert c.kv.delete("app/config")
        assert c.kv.get("app/config") is None
        with pytest.raises(rostra.RostraError) as e:
            c.kv.put("", "x")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_sessions_hold_kv_locks(agent: Agent) -> None:
    with rostra.Client(agent.grpc_addr) as c:
        sid = c.sessions.create(name="worker", ttl="30s", lock_delay=0)
        assert c.sessions.info(sid).name == "worker"  # type: ignore[union-attr]
        assert c.sessions.renew(sid).id == sid
        assert sid in [s.id for s in c.sessions.list()]
        assert c.kv.put("locks/a", "me", acquire=sid)
        other = c.sessions.create()
        assert not c.kv.put("locks/a", "them", acquire=other), "held by the first session"
        c.sessions.destroy(sid)  # releases its lock (no lock-delay on this session)
        assert c.kv.put("locks/a", "them", acquire=other)
        assert c.sessions.info(sid) is None
        with pytest.raises(rostra.RostraError) as e:
            c.sessions.create(ttl="1x")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_prefix_watch_survives_an_agent_restart(agent: Agent) -> None:
    c = rostra.Client(agent.grpc_addr)
    c.kv.put("w/a", "1")
    seen: list[tuple[str, bytes]] = []
    removed: list[str] = []
    watch = c.kv.watch("w/", prefix=True)
    first = next(watch)
    assert dict((k, v.value) for k, v in first.state.items()) == {"w/a": b"1"}
    done = threading.Event()

    def follow() -> None:
        for change in watch:
            seen.extend((k, v.value) for k, v in change.upserted.items())
            removed.extend(change.removed)
            if "w/end" in change.upserted:
                done.set()
                return

    t = threading.Thread(target=follow)
    t.start()
    c.kv.put("w/b", "2")
    wait_until("w/b seen", lambda: ("w/b", b"2") in seen)
    agent.restart()  # same ports and data: the watch reconnects and resumes
    c.kv.put("w/c", "3")
    c.kv.delete("w/a")
    c.kv.put("w/end", "")
    assert done.wait(60)
    watch.close()
    t.join()
    assert seen == [("w/b", b"2"), ("w/c", b"3"), ("w/end", b"")], "none missed, none repeated"
    assert removed == ["w/a"]
    c.close()


def test_a_reset_after_compaction_is_handled_by_a_resync(agent: Agent) -> None:
    proxy = Proxy(agent.grpc_addr)
    direct = rostra.Client(agent.grpc_addr)
    direct.kv.put("r/keep", "1")
    direct.kv.put("r/gone", "1")
    with rostra.Client(proxy.addr) as c, c.kv.watch("r/", prefix=True) as w:
        assert sorted(next(w).state) == ["r/gone", "r/keep"]
        # The watcher's connection breaks; while it is away, far more happens than the
        # server keeps history of (8 KiB in this agent's config).
        proxy.cut()
        for i in range(40):
            direct.kv.put(f"r/{i % 4}", f"{i}" + "x" * 1024)
        direct.kv.delete("r/gone")
        change = next(w)
    assert change.resynced, "the server could not resume: RESET, then a fresh snapshot"
    assert sorted(change.state) == ["r/0", "r/1", "r/2", "r/3", "r/keep"]
    assert sorted(change.upserted) == ["r/0", "r/1", "r/2", "r/3"], "r/keep did not change"
    assert change.upserted["r/3"].value.startswith(b"39")
    assert list(change.removed) == ["r/gone"]
    direct.close()
    proxy.close()


def _contend(addr: str, name: str, rounds: int, out: "multiprocessing.Queue[Any]") -> None:
    c = rostra.Client(addr)
    for _ in range(rounds):
        with c.lock(name) as token:
            # The fenced resource: written with CAS, refusing a token older than its own.
            kv = c.kv.get("fenced")
            held = int(kv.value) if kv is not None else 0
            assert token > held, f"token {token} after {held}"
            cas = kv.modify_index if kv is not None else 0
            ok = c.kv.put("fenced", str(token), cas=cas)
            out.put((os.getpid(), token, ok))
    c.close()


def test_two_processes_never_hold_a_lock_together_and_tokens_increase(agent: Agent) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: "multiprocessing.Queue[Any]" = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(agent.grpc_addr, "jobs/nightly", 5, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in range(10)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    tokens = [t for _, t, _ in results]
    assert all(ok for _, _, ok in results), "every CAS on the fenced key went through: no overlap"
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens
    assert len({pid for pid, _, _ in results}) == 2


def test_an_event_fired_is_seen_by_a_watcher(agent: Agent) -> None:
    with rostra.Client(agent.grpc_addr) as c:
        with c.events.watch("deploy") as w:
            assert dict(next(w).state) == {}
            fired = c.events.fire("deploy", "v42")
            change = next(w)
        assert [e.payload for e in change.upserted.values()] == [b"v42"]
        assert fired.ltime in change.upserted
        with pytest.raises(rostra.RostraError) as e:
            c.events.fire("deploy", node="(")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_catalog_and_health_watches_see_a_registration(agent: Agent) -> None:
    with rostra.Client(agent.grpc_addr) as c:
        services = c.catalog.watch_services()
        health = c.health.watch_service("web")
        assert "web" not in next(services).state
        assert dict(next(health).state) == {}
        c.catalog.register("n1", "10.0.0.1", catalog_pb2.ServiceInstance(id="web1", name="web", port=80, tags=["v1"]))
        change = next(services)
        assert list(change.upserted["web"].tags) == ["v1"]
        entry = next(health).upserted[("n1", "web1")]
        assert entry.service.port == 80 and entry.node.address == "10.0.0.1"
        services.close()
        health.close()


def test_the_asyncio_client(agent: Agent) -> None:
    async def main() -> None:
        async with rostra.AsyncClient(agent.grpc_addr) as c:
            assert await c.kv.put("a/x", b"1")
            kv = await c.kv.get("a/x")
            assert kv is not None and kv.value == b"1"
            w = c.kv.watch("a/", prefix=True)
            assert sorted((await w.__anext__()).state) == ["a/x"]
            await c.kv.put("a/y", b"2")
            assert list((await w.__anext__()).upserted) == ["a/y"]
            w.close()
            async with c.lock("jobs/a") as t1:
                assert t1 > 0
            async with c.lock("jobs/a") as t2:
                assert t2 > t1
            sid = await c.sessions.create(ttl="30s")
            assert (await c.sessions.renew(sid)).id == sid
            await c.sessions.destroy(sid)
            assert await c.sessions.info(sid) is None
            with pytest.raises(rostra.RostraError):
                await c.kv.put("", b"x")

    asyncio.run(main())
