package rostra

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "rostra.dev/go/rostra/v1"
)

// Change is one consistent point of a watch.
type Change[V any] struct {
	// Index is the raft index this view reflects (resume from it with a start index).
	Index uint64
	// Upserted holds the items new or changed since the previous change (all of them,
	// the first time).
	Upserted map[string]V
	// Removed lists the keys gone since the previous change.
	Removed []string
	// State is the whole watched state as of Index.
	State map[string]V
	// Resynced is true when the change was computed after the server asked for a
	// resync (RESET): it is the difference between what was held and the fresh state.
	Resynced bool
}

// frame is one response of any watch RPC, as the protocol sees it.
type frame[V any] struct {
	kind     pb.WatchKind
	index    uint64
	upserted []keyed[V]
	removed  []string
}

type keyed[V any] struct {
	key  string
	item V
}

// follower keeps one watch's items and turns the protocol into changes.
type follower[V any] struct {
	same     func(a, b V) bool
	state    map[string]V
	synced   bool
	index    uint64
	before   map[string]V
	building map[string]V
	first    bool
}

func newFollower[V any](same func(a, b V) bool, start uint64) *follower[V] {
	f := &follower[V]{same: same, state: map[string]V{}, building: map[string]V{}, first: true}
	if start > 0 {
		f.synced, f.index, f.first = true, start, false
	}
	return f
}

func (f *follower[V]) resumeIndex() uint64 {
	if f.synced {
		return f.index
	}
	return 0
}

func (f *follower[V]) reopened() {
	if !f.synced {
		f.reset()
	}
}

func (f *follower[V]) reset() {
	if f.before == nil && !f.first {
		f.before = f.state
	}
	f.state, f.building, f.synced = map[string]V{}, map[string]V{}, false
}

func clone[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (f *follower[V]) feed(fr frame[V]) (*Change[V], error) {
	switch fr.kind {
	case pb.WatchKind_WATCH_KIND_RESET:
		f.reset()
	case pb.WatchKind_WATCH_KIND_SNAPSHOT:
		for _, kv := range fr.upserted {
			f.building[kv.key] = kv.item
		}
	case pb.WatchKind_WATCH_KIND_SYNCED:
		f.index = fr.index
		if f.synced {
			return nil, nil // a resumed stream caught up
		}
		f.synced = true
		fresh, old, first := f.building, f.before, f.first
		f.building, f.before, f.first, f.state = map[string]V{}, nil, false, fresh
		if first {
			return &Change[V]{Index: f.index, Upserted: clone(fresh), State: clone(fresh)}, nil
		}
		up := map[string]V{}
		for k, v := range fresh {
			if was, ok := old[k]; !ok || !f.same(was, v) {
				up[k] = v
			}
		}
		var removed []string
		for k := range old {
			if _, ok := fresh[k]; !ok {
				removed = append(removed, k)
			}
		}
		return &Change[V]{Index: f.index, Upserted: up, Removed: removed, State: clone(fresh), Resynced: true}, nil
	case pb.WatchKind_WATCH_KIND_CHANGES:
		f.index = fr.index
		target := f.building
		if f.synced {
			target = f.state
		}
		for _, k := range fr.removed {
			delete(target, k)
		}
		up := map[string]V{}
		for _, kv := range fr.upserted {
			target[kv.key] = kv.item
			up[kv.key] = kv.item
		}
		if f.synced {
			return &Change[V]{Index: f.index, Upserted: up, Removed: append([]string(nil), fr.removed...), State: clone(f.state)}, nil
		}
	default:
		return nil, fmt.Errorf("unknown watch message kind %v", fr.kind)
	}
	return nil, nil
}

// Watch follows one watch RPC: Changes delivers each consistent point; the stream is
// reopened from the last index after a failure the server can recover from, so none
// is missed or repeated. Cancelling the context given to the watch ends it; Err then
// says why it ended (nil after a cancellation).
type Watch[V any] struct {
	changes chan Change[V]
	err     error
	done    chan struct{}
}

// Changes is closed when the watch ends.
func (w *Watch[V]) Changes() <-chan Change[V] { return w.changes }

// Err is the error that ended the watch (valid once Changes is closed).
func (w *Watch[V]) Err() error {
	<-w.done
	return w.err
}

// A stream of watch responses, whatever the RPC.
type recv[R any] interface{ Recv() (R, error) }

// retriable codes: the server went away, restarted, or is busy.
func retriable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unknown, codes.Internal, codes.ResourceExhausted, codes.Canceled:
		return true
	}
	return false
}

const maxBackoff = time.Second

func follow[R any, V any](
	ctx context.Context,
	open func(ctx context.Context, start uint64) (recv[R], error),
	toFrame func(R) frame[V],
	same func(a, b V) bool,
	start uint64,
) *Watch[V] {
	w := &Watch[V]{changes: make(chan Change[V]), done: make(chan struct{})}
	f := newFollower(same, start)
	go func() {
		defer close(w.done)
		defer close(w.changes)
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			stream, err := open(ctx, f.resumeIndex())
			for err == nil {
				var r R
				if r, err = stream.Recv(); err != nil {
					break
				}
				backoff = 50 * time.Millisecond
				var ch *Change[V]
				if ch, err = f.feed(toFrame(r)); err != nil {
					w.err = err
					return
				}
				if ch != nil {
					select {
					case w.changes <- *ch:
					case <-ctx.Done():
						return
					}
				}
			}
			if ctx.Err() != nil {
				return
			}
			if !retriable(err) && status.Code(err) != codes.OK {
				w.err = err
				return
			}
			// The stream broke (or the server ended it): resume where we stand.
			f.reopened()
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			if backoff *= 2; backoff > maxBackoff {
				backoff = maxBackoff
			}
		}
	}()
	return w
}
