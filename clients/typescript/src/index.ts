/**
 * Rostra's TypeScript client: the generated gRPC stubs (`./gen/rostra/v1/*`) and a thin
 * layer for what raw stubs make hard, watches that resume (async iterators, cancelled
 * with an `AbortSignal`) and locks that fence (`await using`).
 *
 * ```ts
 * const client = new Client("127.0.0.1:8502");
 * await client.kv.put("app/config", "v1");
 * for await (const change of client.kv.watch("app/", { prefix: true })) { ... }
 * { await using lock = await client.lock("jobs/nightly"); use(lock.token); }
 * ```
 */
import * as grpc from "@grpc/grpc-js";

import {
  CatalogClient,
  CatalogServiceEntry,
  HealthClient,
  InstanceRef,
  ServiceEntry,
  ServiceInstance,
  ServiceSummary,
} from "./gen/rostra/v1/catalog.js";
import { Consistency, WatchKind } from "./gen/rostra/v1/common.js";
import { EventClient, UserEvent } from "./gen/rostra/v1/event.js";
import { KVClient, KvEvent_Type, KvPair, PutRequest, WatchResponse } from "./gen/rostra/v1/kv.js";
import { LockClient, LockHoldResponse } from "./gen/rostra/v1/lock.js";
import { SessionBehavior, SessionClient, SessionInfo } from "./gen/rostra/v1/session.js";
import { RostraError, fromServiceError } from "./errors.js";
import { Change, Frame, Watch } from "./watch.js";

export { RostraError } from "./errors.js";
export type { Change } from "./watch.js";
export { Watch } from "./watch.js";

type Bytes = string | Uint8Array;

function bytes(v: Bytes): Buffer {
  return typeof v === "string" ? Buffer.from(v) : Buffer.from(v);
}

/** Options every call takes. */
export interface CallOpts {
  /** Cancels the call. */
  signal?: AbortSignal;
}

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (e: grpc.ServiceError | null, r: Res) => void,
) => grpc.ClientUnaryCall;

function unary<Req, Res>(f: Unary<Req, Res>, req: Req, opts?: CallOpts): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = f(req, new grpc.Metadata(), {}, (e, r) => (e ? reject(fromServiceError(e)) : resolve(r)));
    opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
  });
}

/** A catalog or health watch of instances, keyed `node/serviceId`. */
function instancesFrame<E extends { node?: { name: string }; service?: { id: string } }>(r: {
  kind: WatchKind;
  index: bigint;
  upserted: E[];
  removed: InstanceRef[];
}): Frame<E> {
  return {
    kind: r.kind,
    index: r.index,
    upserted: r.upserted.map((e) => [`${e.node?.name}/${e.service?.id}`, e]),
    removed: r.removed.map((i) => `${i.node}/${i.serviceId}`),
  };
}

const samePair = (a: KvPair, b: KvPair) => a.modifyIndex === b.modifyIndex && a.key === b.key;
const sameJson = <V>(a: V, b: V) => JSON.stringify(a) === JSON.stringify(b);

/** Consul's key/value store. */
export class KV {
  constructor(private readonly stub: KVClient) {}

  async get(key: string, opts?: CallOpts & { consistency?: Consistency }): Promise<KvPair | undefined> {
    const r = await unary(this.stub.get.bind(this.stub), { key, consistency: opts?.consistency ?? Consistency.CONSISTENCY_DEFAULT }, opts);
    return r.kv;
  }

  async list(prefix: string, opts?: CallOpts): Promise<KvPair[]> {
    const r = await unary(this.stub.list.bind(this.stub), { prefix, separator: "", keysOnly: false, consistency: Consistency.CONSISTENCY_DEFAULT }, opts);
    return r.kvs;
  }

  /**
   * Writes `key`; with `cas`, only if its modify index is `cas` (0: only if absent);
   * with `acquire`/`release` (a session id), as Consul's KV lock.
   */
  async put(
    key: string,
    value: Bytes = "",
    opts?: CallOpts & { flags?: bigint; cas?: bigint; acquire?: string; release?: string },
  ): Promise<boolean> {
    const req: PutRequest = { key, value: bytes(value), flags: opts?.flags ?? 0n, cas: opts?.cas, acquire: opts?.acquire, release: opts?.release };
    return (await unary(this.stub.put.bind(this.stub), req, opts)).succeeded;
  }

  async delete(key: string, opts?: CallOpts & { recurse?: boolean; cas?: bigint }): Promise<boolean> {
    const req = { key, recurse: opts?.recurse ?? false, cas: opts?.cas };
    return (await unary(this.stub.delete.bind(this.stub), req, opts)).succeeded;
  }

  /** The pairs at `key` (or under it, with `prefix`), keyed by key. */
  watch(key: string, opts?: CallOpts & { prefix?: boolean; startIndex?: bigint }): Watch<WatchResponse, KvPair> {
    const prefix = opts?.prefix ?? false;
    const frame = (r: WatchResponse): Frame<KvPair> => ({
      kind: r.kind,
      index: r.index,
      upserted: r.events.filter((e) => e.type === KvEvent_Type.TYPE_PUT && e.kv).map((e) => [e.kv!.key, e.kv!]),
      removed: r.events.filter((e) => e.type === KvEvent_Type.TYPE_DELETE && e.kv).map((e) => e.kv!.key),
    });
    return new Watch((start) => this.stub.watch({ key, prefix, startIndex: start }), frame, samePair, opts?.startIndex ?? 0n, opts?.signal);
  }
}

/** User events (Consul's `/v1/event`). */
export class Events {
  constructor(private readonly stub: EventClient) {}

  async fire(name: string, payload: Bytes = "", opts?: CallOpts & { node?: string; service?: string; tag?: string }): Promise<UserEvent> {
    const req = { name, payload: bytes(payload), nodeFilter: opts?.node ?? "", serviceFilter: opts?.service ?? "", tagFilter: opts?.tag ?? "" };
    const r = await unary(this.stub.fire.bind(this.stub), req, opts);
    if (!r.event) throw new RostraError(grpc.status.INTERNAL, "the server answered without the event");
    return r.event;
  }

  /** Retained events (all, or those named `name`), keyed by Lamport time. */
  watch(name = "", opts?: CallOpts & { startIndex?: bigint }) {
    return new Watch(
      (start) => this.stub.watch({ name, startIndex: start }),
      (r): Frame<UserEvent> => ({ kind: r.kind, index: r.index, upserted: r.upserted.map((e) => [String(e.ltime), e]), removed: r.removed.map(String) }),
      sameJson,
      opts?.startIndex ?? 0n,
      opts?.signal,
    );
  }
}

/** Nodes, services and instances. Instance keys are `node/serviceId`. */
export class Catalog {
  constructor(private readonly stub: CatalogClient) {}

  /** Registers `node` (and `service` on it); returns the raft index. */
  async register(node: string, address: string, service?: Partial<ServiceInstance>, opts?: CallOpts): Promise<bigint> {
    const req = {
      node: { id: "", name: node, address, datacenter: "", taggedAddresses: {}, meta: {}, createIndex: 0n, modifyIndex: 0n },
      skipNodeUpdate: false,
      service: service ? ServiceInstance.fromPartial({ node, ...service }) : undefined,
      checks: [],
    };
    return (await unary(this.stub.register.bind(this.stub), req, opts)).header?.index ?? 0n;
  }

  watchServices(opts?: CallOpts & { startIndex?: bigint }) {
    return new Watch(
      (start) => this.stub.watchServices({ startIndex: start }),
      (r): Frame<ServiceSummary> => ({ kind: r.kind, index: r.index, upserted: r.upserted.map((s) => [s.name, s]), removed: r.removed }),
      sameJson,
      opts?.startIndex ?? 0n,
      opts?.signal,
    );
  }

  watchService(name: string, opts?: CallOpts & { tags?: string[]; startIndex?: bigint }) {
    return new Watch(
      (start) => this.stub.watchService({ name, tags: opts?.tags ?? [], startIndex: start }),
      instancesFrame<CatalogServiceEntry>,
      sameJson,
      opts?.startIndex ?? 0n,
      opts?.signal,
    );
  }
}

/** Instances with their checks (Consul's `/v1/health`). */
export class Health {
  constructor(private readonly stub: HealthClient) {}

  /** Instances of `name` with their checks, keyed `node/serviceId`. */
  watchService(name: string, opts?: CallOpts & { tags?: string[]; passingOnly?: boolean; startIndex?: bigint }) {
    return new Watch(
      (start) => this.stub.watchService({ service: name, tags: opts?.tags ?? [], passingOnly: opts?.passingOnly ?? false, startIndex: start }),
      instancesFrame<ServiceEntry>,
      sameJson,
      opts?.startIndex ?? 0n,
      opts?.signal,
    );
  }
}

/** Consul's sessions: what KV locks (`acquire`/`release`) are held with. */
export class Sessions {
  constructor(private readonly stub: SessionClient) {}

  /** Creates a session (`ttl` as Consul's, e.g. "30s"; `lockDelayNs` 15 s by default). */
  async create(opts?: CallOpts & { name?: string; ttl?: string; node?: string; lockDelayNs?: bigint; behavior?: SessionBehavior }): Promise<string> {
    const req = {
      name: opts?.name ?? "",
      node: opts?.node ?? "",
      ttl: opts?.ttl ?? "",
      lockDelayNs: opts?.lockDelayNs,
      behavior: opts?.behavior ?? SessionBehavior.SESSION_BEHAVIOR_RELEASE,
      serviceChecks: [],
    };
    return (await unary(this.stub.create.bind(this.stub), req, opts)).id;
  }

  async renew(id: string, opts?: CallOpts): Promise<SessionInfo | undefined> {
    return (await unary(this.stub.renew.bind(this.stub), { id }, opts)).session;
  }

  async info(id: string, opts?: CallOpts): Promise<SessionInfo | undefined> {
    return (await unary(this.stub.info.bind(this.stub), { id, consistency: Consistency.CONSISTENCY_DEFAULT }, opts)).session;
  }

  async list(opts?: CallOpts): Promise<SessionInfo[]> {
    return (await unary(this.stub.list.bind(this.stub), { consistency: Consistency.CONSISTENCY_DEFAULT }, opts)).sessions;
  }

  async destroy(id: string, opts?: CallOpts): Promise<void> {
    await unary(this.stub.destroy.bind(this.stub), { id }, opts);
  }
}

/**
 * A held lock: released when disposed (`await using`) or by `release()`. `token` is its
 * fencing token, which only grows from one holder to the next; `lost` aborts if the
 * lock is lost while held (its session ended, or the stream to the server broke).
 */
export class HeldLock implements AsyncDisposable {
  private readonly lostController = new AbortController();
  private released = false;

  constructor(
    private readonly stream: grpc.ClientReadableStream<LockHoldResponse>,
    readonly token: bigint,
    readonly session: string,
    readonly key: string,
  ) {
    stream.on("data", (r: LockHoldResponse) => {
      if (r.lost) this.lose(r.lost.reason);
    });
    stream.on("error", (e: grpc.ServiceError) => {
      if (!this.released) this.lose(e.details);
    });
    stream.on("end", () => this.lose("the server ended the lock stream"));
  }

  /** Aborts (with the reason) if the lock is lost while held. */
  get lost(): AbortSignal {
    return this.lostController.signal;
  }

  private lose(reason: string): void {
    if (!this.released && !this.lostController.signal.aborted) this.lostController.abort(new Error(reason));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stream.cancel();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

/** A connection to a Rostra agent's gRPC API. */
export class Client {
  readonly kv: KV;
  readonly events: Events;
  readonly catalog: Catalog;
  readonly health: Health;
  readonly sessions: Sessions;
  private readonly locks: LockClient;
  private readonly stubs: grpc.Client[];

  constructor(address = "127.0.0.1:8502", credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    const kv = new KVClient(address, credentials);
    const events = new EventClient(address, credentials);
    const catalog = new CatalogClient(address, credentials);
    const health = new HealthClient(address, credentials);
    const sessions = new SessionClient(address, credentials);
    this.locks = new LockClient(address, credentials);
    this.stubs = [kv, events, catalog, health, sessions, this.locks];
    this.sessions = new Sessions(sessions);
    this.kv = new KV(kv);
    this.events = new Events(events);
    this.catalog = new Catalog(catalog);
    this.health = new Health(health);
  }

  /** Waits until the lock on KV prefix `name` is held (one of `limit` slots when > 1). */
  lock(name: string, opts?: CallOpts & { limit?: number; sessionName?: string }): Promise<HeldLock> {
    const stream = this.locks.hold({ name, limit: opts?.limit ?? 1, sessionName: opts?.sessionName ?? "" });
    // A cancelled stream emits CANCELLED; never let that be an unhandled 'error'.
    stream.on("error", () => {});
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        stream.cancel();
        reject(new RostraError(grpc.status.CANCELLED, "waiting for the lock was cancelled"));
      };
      opts?.signal?.addEventListener("abort", onAbort, { once: true });
      const onData = (r: LockHoldResponse) => {
        if (r.acquired) {
          done();
          resolve(new HeldLock(stream, r.acquired.token, r.acquired.session, r.acquired.key));
        } else if (r.lost) {
          done();
          stream.cancel();
          reject(new RostraError(grpc.status.ABORTED, r.lost.reason));
        }
      };
      const onError = (e: grpc.ServiceError) => {
        done();
        reject(fromServiceError(e));
      };
      const done = () => {
        stream.off("data", onData);
        stream.off("error", onError);
        opts?.signal?.removeEventListener("abort", onAbort);
      };
      stream.on("data", onData);
      stream.on("error", onError);
    });
  }

  close(): void {
    for (const s of this.stubs) s.close();
  }
}
