// The client against a live server: KV with CAS, a prefix watch across an agent
// restart, a RESET after compaction, two processes contending for a lock, events,
// catalog and health watches, cancellation with AbortSignal.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import * as grpc from "@grpc/grpc-js";

import { Client, RostraError } from "../src/index.js";
import { Agent, Proxy, waitUntil } from "./agent.js";

const agent = new Agent({ limits: { watch_history_bytes: 8192 } });
before(async () => agent.start());
after(() => agent.kill());

test("put, get, CAS and delete", async () => {
  const c = new Client(agent.grpcAddr);
  assert.equal(await c.kv.put("app/config", "v1"), true);
  const kv = await c.kv.get("app/config");
  assert.equal(kv?.value.toString(), "v1");
  assert.equal(await c.kv.put("app/config", "v2", { cas: kv!.modifyIndex + 1000n }), false);
  assert.equal(await c.kv.put("app/config", "v2", { cas: kv!.modifyIndex }), true);
  assert.equal(await c.kv.put("app/config", "v3", { cas: 0n }), false, "cas 0 writes only if absent");
  assert.deepEqual((await c.kv.list("app/")).map((p) => p.key), ["app/config"]);
  assert.equal(await c.kv.delete("app/config"), true);
  assert.equal(await c.kv.get("app/config"), undefined);
  await assert.rejects(c.kv.put("", "x"), (e: unknown) => e instanceof RostraError && e.code === grpc.status.INVALID_ARGUMENT);
  c.close();
});

test("sessions hold KV locks", async () => {
  const c = new Client(agent.grpcAddr);
  const sid = await c.sessions.create({ name: "worker", ttl: "30s", lockDelayNs: 0n });
  assert.equal((await c.sessions.info(sid))?.name, "worker");
  assert.equal((await c.sessions.renew(sid))?.id, sid);
  assert.ok((await c.sessions.list()).some((s) => s.id === sid));
  assert.equal(await c.kv.put("locks/a", "me", { acquire: sid }), true);
  const other = await c.sessions.create();
  assert.equal(await c.kv.put("locks/a", "them", { acquire: other }), false, "held by the first session");
  await c.sessions.destroy(sid);
  assert.equal(await c.kv.put("locks/a", "them", { acquire: other }), true);
  assert.equal(await c.sessions.info(sid), undefined);
  await assert.rejects(c.sessions.create({ ttl: "1x" }), (e: unknown) => e instanceof RostraError && e.code === grpc.status.INVALID_ARGUMENT);
  c.close();
});

test("a prefix watch survives an agent restart, none missed, none repeated", async () => {
  const c = new Client(agent.grpcAddr);
  await c.kv.put("w/a", "1");
  const seen: string[] = [];
  const removed: string[] = [];
  const watch = c.kv.watch("w/", { prefix: true });
  let first = true;
  const followed = (async () => {
    for await (const change of watch) {
      if (first) {
        assert.deepEqual([...change.state.keys()], ["w/a"]);
        first = false;
        continue;
      }
      for (const [k, v] of change.upserted) seen.push(`${k}=${v.value.toString()}`);
      removed.push(...change.removed);
      if (change.upserted.has("w/end")) return;
    }
  })();
  await waitUntil("the watch is synced", () => !first);
  await c.kv.put("w/b", "2");
  await waitUntil("w/b seen", () => seen.includes("w/b=2"));
  await agent.restart();
  await c.kv.put("w/c", "3");
  await c.kv.delete("w/a");
  await c.kv.put("w/end", "");
  await followed;
  watch.close();
  assert.deepEqual(seen, ["w/b=2", "w/c=3", "w/end="]);
  assert.deepEqual(removed, ["w/a"]);
  c.close();
});

test("a RESET after compaction is handled by a resync", async () => {
  const proxy = new Proxy(agent.grpcAddr);
  await proxy.listen();
  const direct = new Client(agent.grpcAddr);
  await direct.kv.put("r/keep", "1");
  await direct.kv.put("r/gone", "1");
  const c = new Client(proxy.addr);
  const it = c.kv.watch("r/", { prefix: true })[Symbol.asyncIterator]();
  const start = await it.next();
  assert.deepEqual([...start.value!.state.keys()].sort(), ["r/gone", "r/keep"]);
  // The connection breaks; meanwhile more happens than the server keeps history of.
  proxy.cut();
  for (let i = 0; i < 40; i++) await direct.kv.put(`r/${i % 4}`, `${i}` + "x".repeat(1024));
  await direct.kv.delete("r/gone");
  const change = (await it.next()).value!;
  await it.return?.();
  assert.equal(change.resynced, true);
  assert.deepEqual([...change.state.keys()].sort(), ["r/0", "r/1", "r/2", "r/3", "r/keep"]);
  assert.deepEqual([...change.upserted.keys()].sort(), ["r/0", "r/1", "r/2", "r/3"], "r/keep did not change");
  assert.deepEqual(change.removed, ["r/gone"]);
  c.close();
  direct.close();
  proxy.close();
});

test("two processes never hold a lock together; tokens only increase", async () => {
  const contender = fileURLToPath(new URL("./contender.js", import.meta.url));
  const run = () => promisify(execFile)(process.execPath, [contender, agent.grpcAddr, "jobs/nightly", "5"]);
  const outs = await Promise.all([run(), run()]);
  const rounds = outs.flatMap((o) => o.stdout.trim().split("\n").map((l) => JSON.parse(l) as { pid: number; token: string; ok: boolean }));
  assert.equal(rounds.length, 10);
  assert.ok(rounds.every((r) => r.ok), "every fenced CAS went through: no overlap");
  const tokens = rounds.map((r) => BigInt(r.token));
  assert.equal(new Set(tokens).size, 10);
  assert.equal(new Set(rounds.map((r) => r.pid)).size, 2);
});

test("an event fired is seen by a watcher; bad filters are refused", async () => {
  const c = new Client(agent.grpcAddr);
  const it = c.events.watch("deploy")[Symbol.asyncIterator]();
  assert.equal((await it.next()).value!.state.size, 0);
  const fired = await c.events.fire("deploy", "v42");
  const change = (await it.next()).value!;
  await it.return?.();
  assert.deepEqual([...change.upserted.values()].map((e) => e.payload.toString()), ["v42"]);
  assert.ok(change.upserted.has(String(fired.ltime)));
  await assert.rejects(c.events.fire("deploy", "", { node: "(" }), (e: unknown) => e instanceof RostraError && e.code === grpc.status.INVALID_ARGUMENT);
  c.close();
});

test("catalog and health watches see a registration; AbortSignal ends a watch", async () => {
  const c = new Client(agent.grpcAddr);
  const services = c.catalog.watchServices()[Symbol.asyncIterator]();
  const abort = new AbortController();
  const health = c.health.watchService("web", { signal: abort.signal })[Symbol.asyncIterator]();
  assert.equal((await services.next()).value!.state.has("web"), false);
  assert.equal((await health.next()).value!.state.size, 0);
  await c.catalog.register("n1", "10.0.0.1", { id: "web1", name: "web", port: 80, tags: ["v1"] });
  assert.deepEqual((await services.next()).value!.upserted.get("web")?.tags, ["v1"]);
  const entry = (await health.next()).value!.upserted.get("n1/web1");
  assert.equal(entry?.service?.port, 80);
  abort.abort();
  assert.equal((await health.next()).done, true, "an aborted watch ends");
  await services.return?.();
  c.close();
});

test("waiting for a lock is cancelled by an AbortSignal", async () => {
  const c = new Client(agent.grpcAddr);
  await using held = await c.lock("jobs/busy");
  assert.ok(held.token > 0n);
  const abort = new AbortController();
  const waiting = c.lock("jobs/busy", { signal: abort.signal });
  abort.abort();
  await assert.rejects(waiting, (e: unknown) => e instanceof RostraError && e.code === grpc.status.CANCELLED);
  c.close();
});
