// Package rostra is the Go client for Rostra: the generated gRPC stubs for every
// rostra.v1 service (package rostra.dev/go/rostra/v1) and a thin layer for what raw
// stubs make hard, watches that resume (Watch, a channel of changes that survives a
// broken stream) and locks that fence (Lock, with its token), each bound to a
// context.Context.
package rostra

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "rostra.dev/go/rostra/v1"
)

// Client is a connection to a Rostra agent's gRPC API.
type Client struct {
	conn     *grpc.ClientConn
	KV       *KV
	Events   *Events
	Catalog  *Catalog
	Health   *Health
	Sessions *Sessions
	locks    pb.LockClient
}

// Dial connects to addr (host:port of the agent's gRPC port, 127.0.0.1:8502 by default
// on a dev agent). Extra dial options (TLS credentials, say) come after the default
// insecure one.
func Dial(ctx context.Context, addr string, opts ...grpc.DialOption) (*Client, error) {
	conn, err := grpc.DialContext(ctx, addr, append([]grpc.DialOption{grpc.WithInsecure()}, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:     conn,
		KV:       &KV{pb.NewKVClient(conn)},
		Events:   &Events{pb.NewEventClient(conn)},
		Catalog:  &Catalog{pb.NewCatalogClient(conn)},
		Health:   &Health{pb.NewHealthClient(conn)},
		Sessions: &Sessions{pb.NewSessionClient(conn)},
		locks:    pb.NewLockClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection, for the generated stubs of other services.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

func sameMessage[V proto.Message](a, b V) bool { return proto.Equal(a, b) }

// KV is Consul's key/value store.
type KV struct{ stub pb.KVClient }

// Get returns the pair at key, or nil when there is none.
func (k *KV) Get(ctx context.Context, key string) (*pb.KvPair, error) {
	r, err := k.stub.Get(ctx, &pb.GetRequest{Key: key})
	return r.GetKv(), err
}

// List returns the pairs under prefix.
func (k *KV) List(ctx context.Context, prefix string) ([]*pb.KvPair, error) {
	r, err := k.stub.List(ctx, &pb.ListRequest{Prefix: prefix})
	return r.GetKvs(), err
}

// Put writes key and reports whether it was written.
func (k *KV) Put(ctx context.Context, key string, value []byte) (bool, error) {
	r, err := k.stub.Put(ctx, &pb.PutRequest{Key: key, Value: value})
	return r.GetSucceeded(), err
}

// CAS writes key only if its modify index is index (0: only if absent).
func (k *KV) CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error) {
	r, err := k.stub.Put(ctx, &pb.PutRequest{Key: key, Value: value, Cas: &index})
	return r.GetSucceeded(), err
}

// Acquire writes key as Consul's KV lock held by session; it reports whether the lock
// was acquired.
func (k *KV) Acquire(ctx context.Context, key string, value []byte, session string) (bool, error) {
	r, err := k.stub.Put(ctx, &pb.PutRequest{Key: key, Value: value, Lock: &pb.PutRequest_Acquire{Acquire: session}})
	return r.GetSucceeded(), err
}

// Release releases session's KV lock on key.
func (k *KV) Release(ctx context.Context, key string, value []byte, session string) (bool, error) {
	r, err := k.stub.Put(ctx, &pb.PutRequest{Key: key, Value: value, Lock: &pb.PutRequest_Release{Release: session}})
	return r.GetSucceeded(), err
}

// Delete deletes key (everything under it with recurse).
func (k *KV) Delete(ctx context.Context, key string, recurse bool) (bool, error) {
	r, err := k.stub.Delete(ctx, &pb.DeleteRequest{Key: key, Recurse: recurse})
	return r.GetSucceeded(), err
}

// Watch follows the pair at key (the pairs under it with prefix), keyed by key, from
// startIndex (0: the current state first).
func (k *KV) Watch(ctx context.Context, key string, prefix bool, startIndex uint64) *Watch[*pb.KvPair] {
	open := func(ctx context.Context, start uint64) (recv[*pb.WatchResponse], error) {
		return k.stub.Watch(ctx, &pb.WatchRequest{Key: key, Prefix: prefix, StartIndex: start})
	}
	toFrame := func(r *pb.WatchResponse) frame[*pb.KvPair] {
		f := frame[*pb.KvPair]{kind: r.GetKind(), index: r.GetIndex()}
		for _, e := range r.GetEvents() {
			switch e.GetType() {
			case pb.KvEvent_TYPE_PUT:
				f.upserted = append(f.upserted, keyed[*pb.KvPair]{e.GetKv().GetKey(), e.GetKv()})
			case pb.KvEvent_TYPE_DELETE:
				f.removed = append(f.removed, e.GetKv().GetKey())
			}
		}
		return f
	}
	return follow(ctx, open, toFrame, sameMessage[*pb.KvPair], startIndex)
}

// Events are Consul's user events.
type Events struct{ stub pb.EventClient }

// Fire fires a user event; the filters (regular expressions) may be empty.
func (e *Events) Fire(ctx context.Context, name string, payload []byte, node, service, tag string) (*pb.UserEvent, error) {
	r, err := e.stub.Fire(ctx, &pb.EventFireRequest{Name: name, Payload: payload, NodeFilter: node, ServiceFilter: service, TagFilter: tag})
	return r.GetEvent(), err
}

// Watch follows the retained events (all, or those named name), keyed by their
// Lamport time in decimal.
func (e *Events) Watch(ctx context.Context, name string, startIndex uint64) *Watch[*pb.UserEvent] {
	open := func(ctx context.Context, start uint64) (recv[*pb.EventWatchResponse], error) {
		return e.stub.Watch(ctx, &pb.EventWatchRequest{Name: name, StartIndex: start})
	}
	toFrame := func(r *pb.EventWatchResponse) frame[*pb.UserEvent] {
		f := frame[*pb.UserEvent]{kind: r.GetKind(), index: r.GetIndex()}
		for _, ev := range r.GetUpserted() {
			f.upserted = append(f.upserted, keyed[*pb.UserEvent]{fmt.Sprint(ev.GetLtime()), ev})
		}
		for _, l := range r.GetRemoved() {
			f.removed = append(f.removed, fmt.Sprint(l))
		}
		return f
	}
	return follow(ctx, open, toFrame, sameMessage[*pb.UserEvent], startIndex)
}

// Catalog holds nodes, services and instances.
type Catalog struct{ stub pb.CatalogClient }

// Register registers node at address, and service on it when not nil.
func (c *Catalog) Register(ctx context.Context, node, address string, service *pb.ServiceInstance) error {
	_, err := c.stub.Register(ctx, &pb.RegisterRequest{Node: &pb.Node{Name: node, Address: address}, Service: service})
	return err
}

// WatchServices follows the service names and their tags, keyed by name.
func (c *Catalog) WatchServices(ctx context.Context, startIndex uint64) *Watch[*pb.ServiceSummary] {
	open := func(ctx context.Context, start uint64) (recv[*pb.WatchServicesResponse], error) {
		return c.stub.WatchServices(ctx, &pb.WatchServicesRequest{StartIndex: start})
	}
	toFrame := func(r *pb.WatchServicesResponse) frame[*pb.ServiceSummary] {
		f := frame[*pb.ServiceSummary]{kind: r.GetKind(), index: r.GetIndex(), removed: r.GetRemoved()}
		for _, s := range r.GetUpserted() {
			f.upserted = append(f.upserted, keyed[*pb.ServiceSummary]{s.GetName(), s})
		}
		return f
	}
	return follow(ctx, open, toFrame, sameMessage[*pb.ServiceSummary], startIndex)
}

// Health holds instances with their checks.
type Health struct{ stub pb.HealthClient }

// WatchService follows the instances of service with their checks (only passing ones
// with passingOnly), keyed "node/serviceID".
func (h *Health) WatchService(ctx context.Context, service string, passingOnly bool, startIndex uint64) *Watch[*pb.ServiceEntry] {
	open := func(ctx context.Context, start uint64) (recv[*pb.HealthWatchServiceResponse], error) {
		return h.stub.WatchService(ctx, &pb.HealthWatchServiceRequest{Service: service, PassingOnly: passingOnly, StartIndex: start})
	}
	toFrame := func(r *pb.HealthWatchServiceResponse) frame[*pb.ServiceEntry] {
		f := frame[*pb.ServiceEntry]{kind: r.GetKind(), index: r.GetIndex()}
		for _, e := range r.GetUpserted() {
			f.upserted = append(f.upserted, keyed[*pb.ServiceEntry]{e.GetNode().GetName() + "/" + e.GetService().GetId(), e})
		}
		for _, i := range r.GetRemoved() {
			f.removed = append(f.removed, i.GetNode()+"/"+i.GetServiceId())
		}
		return f
	}
	return follow(ctx, open, toFrame, sameMessage[*pb.ServiceEntry], startIndex)
}

// Sessions are Consul's sessions: what KV locks are held with.
type Sessions struct{ stub pb.SessionClient }

// Create creates a session with ttl (Consul's, e.g. "30s"; "" for none) and lockDelay
// (nil: Consul's 15 s) on the agent's node; it returns the session's id.
func (s *Sessions) Create(ctx context.Context, name, ttl string, lockDelay *time.Duration) (string, error) {
	req := &pb.SessionCreateRequest{Name: name, Ttl: ttl, Behavior: pb.SessionBehavior_SESSION_BEHAVIOR_RELEASE}
	if lockDelay != nil {
		ns := uint64(lockDelay.Nanoseconds())
		req.LockDelayNs = &ns
	}
	r, err := s.stub.Create(ctx, req)
	return r.GetId(), err
}

// Renew renews a session's TTL.
func (s *Sessions) Renew(ctx context.Context, id string) (*pb.SessionInfo, error) {
	r, err := s.stub.Renew(ctx, &pb.SessionRenewRequest{Id: id})
	return r.GetSession(), err
}

// Info returns the session, or nil when there is none.
func (s *Sessions) Info(ctx context.Context, id string) (*pb.SessionInfo, error) {
	r, err := s.stub.Info(ctx, &pb.SessionInfoRequest{Id: id})
	return r.GetSession(), err
}

// List returns every session.
func (s *Sessions) List(ctx context.Context) ([]*pb.SessionInfo, error) {
	r, err := s.stub.List(ctx, &pb.SessionListRequest{})
	return r.GetSessions(), err
}

// Destroy ends a session, releasing its locks.
func (s *Sessions) Destroy(ctx context.Context, id string) error {
	_, err := s.stub.Destroy(ctx, &pb.SessionDestroyRequest{Id: id})
	return err
}

// Held is a lock held while its stream is open.
type Held struct {
	// Token is the fencing token: it only grows from one holder to the next.
	Token   uint64
	Session string
	Key     string
	cancel  context.CancelFunc
	lost    chan struct{}
	reason  string
}

// Lost is closed when the lock is no longer held: lost (LostReason says why) or
// released.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// LostReason is why the lock was lost (valid once Lost is closed).
func (h *Held) LostReason() string { <-h.lost; return h.reason }

// Release releases the lock (ends its stream; the server releases it at once).
func (h *Held) Release() { h.cancel() }

// Lock waits until the lock on KV prefix name is held (one of limit slots when limit
// > 1) or ctx ends. The lock is held until Release or the end of ctx.
func (c *Client) Lock(ctx context.Context, name string, limit uint32) (*Held, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.locks.Hold(ctx, &pb.LockHoldRequest{Name: name, Limit: limit})
	if err != nil {
		cancel()
		return nil, err
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			cancel()
			return nil, err
		}
		if lost := r.GetLost(); lost != nil {
			cancel()
			return nil, status.Error(codes.Aborted, lost.GetReason())
		}
		if a := r.GetAcquired(); a != nil {
			h := &Held{Token: a.GetToken(), Session: a.GetSession(), Key: a.GetKey(), cancel: cancel, lost: make(chan struct{})}
			go func() {
				defer close(h.lost)
				for {
					r, err := stream.Recv()
					if err != nil {
						if ctx.Err() != nil {
							h.reason = "released"
						} else {
							h.reason = err.Error()
						}
						return
					}
					if l := r.GetLost(); l != nil {
						h.reason = l.GetReason()
						cancel()
						return
					}
				}
			}()
			return h, nil
		}
	}
}
