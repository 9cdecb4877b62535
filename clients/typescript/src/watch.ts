/**
 * The watch protocol, client side. Every Rostra watch RPC streams the same protocol
 * (`rostra.v1.WatchKind`): SNAPSHOT parts of the state, one SYNCED, then one CHANGES
 * per raft entry; a RESET at any time means "drop what you hold, a snapshot follows".
 * A {@link Watch} keeps the watched items by key and yields a {@link Change} at each
 * consistent point; when the stream breaks it reopens it from the last index it holds,
 * so nothing is missed or repeated. After a RESET the next change is the difference
 * between what was held and the fresh state (`resynced`).
 */
import * as grpc from "@grpc/grpc-js";

import { WatchKind } from "./gen/rostra/v1/common.js";
import { RostraError, RETRIABLE } from "./errors.js";

/** One consistent point of a watch. */
export interface Change<V> {
  /** The raft index this view reflects (resume from it with `startIndex`). */
  index: bigint;
  /** Items new or changed since the previous change (all of them, the first time). */
  upserted: Map<string, V>;
  /** Keys gone since the previous change. */
  removed: string[];
  /** The whole watched state as of `index`. */
  state: Map<string, V>;
  /** True when the change was computed after the server asked for a resync (RESET). */
  resynced: boolean;
}

/** One response of any watch RPC, as the protocol sees it. */
export interface Frame<V> {
  kind: WatchKind;
  index: bigint;
  upserted: [string, V][];
  removed: string[];
}

/** How to compare two items (a resync reports only those that differ). */
export type Same<V> = (a: V, b: V) => boolean;

class Follower<V> {
  state = new Map<string, V>();
  synced = false;
  index = 0n;
  private before: Map<string, V> | undefined;
  private building = new Map<string, V>();
  private first = true;

  constructor(
    private readonly same: Same<V>,
    start: bigint,
  ) {
    if (start > 0n) {
      this.synced = true;
      this.index = start;
      this.first = false;
    }
  }

  resumeIndex(): bigint {
    return this.synced ? this.index : 0n;
  }

  reopened(): void {
    if (!this.synced) this.reset();
  }

  private reset(): void {
    if (this.before === undefined && !this.first) this.before = new Map(this.state);
    this.state = new Map();
    this.building = new Map();
    this.synced = false;
  }

  feed(f: Frame<V>): Change<V> | undefined {
    switch (f.kind) {
      case WatchKind.WATCH_KIND_RESET:
        this.reset();
        return undefined;
      case WatchKind.WATCH_KIND_SNAPSHOT:
        for (const [k, v] of f.upserted) this.building.set(k, v);
        return undefined;
      case WatchKind.WATCH_KIND_SYNCED: {
        this.index = f.index;
        if (this.synced) return undefined; // a resumed stream caught up
        this.synced = true;
        const fresh = this.building;
        this.building = new Map();
        const old = this.before ?? new Map<string, V>();
        this.before = undefined;
        const first = this.first;
        this.first = false;
        this.state = fresh;
        if (first) {
          return { index: this.index, upserted: new Map(fresh), removed: [], state: new Map(fresh), resynced: false };
        }
        const upserted = new Map<string, V>();
        for (const [k, v] of fresh) {
          const was = old.get(k);
          if (was === undefined || !this.same(was, v)) upserted.set(k, v);
        }
        const removed = [...old.keys()].filter((k) => !fresh.has(k));
        return { index: this.index, upserted, removed, state: new Map(fresh), resynced: true };
      }
      case WatchKind.WATCH_KIND_CHANGES: {
        this.index = f.index;
        const target = this.synced ? this.state : this.building;
        for (const k of f.removed) target.delete(k);
        for (const [k, v] of f.upserted) target.set(k, v);
        if (!this.synced) return undefined;
        return {
          index: this.index,
          upserted: new Map(f.upserted),
          removed: [...f.removed],
          state: new Map(this.state),
          resynced: false,
        };
      }
      default:
        throw new Error(`unknown watch message kind ${f.kind}`);
    }
  }
}

const MAX_BACKOFF_MS = 1000;

/**
 * Async-iterates a watch's changes. Reopens the stream from the last index after a
 * failure the server can recover from; `signal` (or `close()`) ends it.
 */
export class Watch<R, V> implements AsyncIterable<Change<V>> {
  private readonly follower: Follower<V>;
  private stream: grpc.ClientReadableStream<R> | undefined;
  private closed = false;

  constructor(
    private readonly open: (startIndex: bigint) => grpc.ClientReadableStream<R>,
    private readonly frame: (r: R) => Frame<V>,
    same: Same<V>,
    startIndex = 0n,
    private readonly signal?: AbortSignal,
  ) {
    this.follower = new Follower(same, startIndex);
    signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** The index of the last change yielded. */
  get index(): bigint {
    return this.follower.index;
  }

  close(): void {
    this.closed = true;
    this.stream?.cancel();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Change<V>> {
    let backoff = 50;
    while (!this.closed && !this.signal?.aborted) {
      const stream = this.open(this.follower.resumeIndex());
      this.stream = stream;
      try {
        for await (const r of stream as AsyncIterable<R>) {
          backoff = 50;
          const change = this.follower.feed(this.frame(r));
          if (change !== undefined) yield change;
        }
      } catch (e) {
        if (this.closed || this.signal?.aborted) return;
        const err = e as grpc.ServiceError;
        if (!RETRIABLE.has(err.code)) throw new RostraError(err.code, err.details ?? String(e));
      } finally {
        if (this.closed) stream.cancel();
      }
      // The stream broke (or the server ended it): resume where we stand.
      this.follower.reopened();
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }
}
