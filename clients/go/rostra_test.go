package rostra

// The client against a live server: KV with CAS, a prefix watch across an agent
// restart, a RESET after compaction, two processes contending for a lock, events,
// catalog and health watches. The server is a one-server cluster started as a child
// process (ROSTRA_BIN, default the debug build in $CARGO_TARGET_DIR).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "rostra.dev/go/rostra/v1"
)

const deadline = 60 * time.Second

type agent struct {
	t                    *testing.T
	dir                  string
	grpcAddr             string
	grpcPort, serverPort string
	cmd                  *exec.Cmd
}

func rostraBin() string {
	if b := os.Getenv("ROSTRA_BIN"); b != "" {
		return b
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		home, _ := os.UserHomeDir()
		target = filepath.Join(home, ".cache/rostra/target")
	}
	return filepath.Join(target, "debug", "rostra")
}

func startAgent(t *testing.T) *agent {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"limits": {"watch_history_bytes": 8192}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &agent{t: t, dir: dir, grpcPort: "0", serverPort: "0"}
	a.start()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			_ = a.cmd.Wait()
		}
	})
	return a
}

func (a *agent) start() {
	a.cmd = exec.Command(rostraBin(), "agent", "-log-json", "-server", "-bootstrap-expect", "1", "-node", "go",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-data-dir", filepath.Join(a.dir, "data"),
		"-grpc-port", a.grpcPort, "-server-port", a.serverPort, "-http-port", "0", "-dns-port", "0",
		"-config-file", filepath.Join(a.dir, "config.json"))
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			var v struct {
				Fields map[string]interface{} `json:"fields"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &v) == nil && v.Fields["message"] == "agent ready" {
				f := map[string]string{}
				for k, x := range v.Fields {
					f[k] = fmt.Sprint(x)
				}
				ready <- f
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case f := <-ready:
		a.grpcAddr = f["grpc_addr"]
		a.grpcPort = a.grpcAddr[strings.LastIndex(a.grpcAddr, ":")+1:]
		a.serverPort = f["raft_addr"][strings.LastIndex(f["raft_addr"], ":")+1:]
	case <-time.After(deadline):
		a.t.Fatal("the agent never reported ready")
	}
	// Ready once the node is an alive member: it has a leader and can hold locks.
	c := dial(a.t, a.grpcAddr)
	defer c.Close()
	waitUntil(a.t, "the node is an alive member", func() bool {
		r, err := pb.NewHealthClient(c.Conn()).Node(context.Background(), &pb.HealthNodeRequest{Node: "go"})
		if err != nil {
			return false
		}
		for _, ch := range r.GetChecks() {
			if ch.GetCheckId() == "serfHealth" && ch.GetStatus() == pb.HealthStatus_HEALTH_STATUS_PASSING {
				return true
			}
		}
		return false
	})
}

func (a *agent) restart() {
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	if err := a.cmd.Wait(); err != nil {
		a.t.Fatalf("the agent did not stop cleanly on SIGTERM: %v", err)
	}
	a.start()
}

func dial(t *testing.T, addr string) *Client {
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitUntil(t *testing.T, what string, check func() bool) {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if check() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func next[V any](t *testing.T, w *Watch[V]) Change[V] {
	select {
	case ch, ok := <-w.Changes():
		if !ok {
			t.Fatalf("the watch ended: %v", w.Err())
		}
		return ch
	case <-time.After(deadline):
		t.Fatal("no change from the watch")
	}
	panic("unreachable")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestPutGetCASDelete(t *testing.T) {
	a := startAgent(t)
	c := dial(t, a.grpcAddr)
	defer c.Close()
	ctx := context.Background()
	if ok, err := c.KV.Put(ctx, "app/config", []byte("v1")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	kv, err := c.KV.Get(ctx, "app/config")
	if err != nil || string(kv.GetValue()) != "v1" {
		t.Fatal(kv, err)
	}
	if ok, _ := c.KV.CAS(ctx, "app/config", []byte("v2"), kv.GetModifyIndex()+1000); ok {
		t.Fatal("a CAS on a stale index wrote")
	}
	if ok, _ := c.KV.CAS(ctx, "app/config", []byte("v2"), kv.GetModifyIndex()); !ok {
		t.Fatal("a CAS on the current index did not write")
	}
	if ok, _ := c.KV.CAS(ctx, "app/config", []byte("v3"), 0); ok {
		t.Fatal("CAS 0 wrote over an existing key")
	}
	if ok, _ := c.KV.Delete(ctx, "app/config", false); !ok {
		t.Fatal("delete")
	}
	if kv, _ := c.KV.Get(ctx, "app/config"); kv != nil {
		t.Fatal("still there", kv)
	}
	if _, err := c.KV.Put(ctx, "", []byte("x")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty key: %v", err)
	}
}

func TestSessionsHoldKVLocks(t *testing.T) {
	a := startAgent(t)
	c := dial(t, a.grpcAddr)
	defer c.Close()
	ctx := context.Background()
	none := time.Duration(0)
	sid, err := c.Sessions.Create(ctx, "worker", "30s", &none)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Sessions.Info(ctx, sid); info.GetName() != "worker" {
		t.Fatal(info)
	}
	if info, err := c.Sessions.Renew(ctx, sid); err != nil || info.GetId() != sid {
		t.Fatal(info, err)
	}
	if ok, _ := c.KV.Acquire(ctx, "locks/a", []byte("me"), sid); !ok {
		t.Fatal("not acquired")
	}
	other, _ := c.Sessions.Create(ctx, "", "", nil)
	if ok, _ := c.KV.Acquire(ctx, "locks/a", []byte("them"), other); ok {
		t.Fatal("acquired while held")
	}
	if err := c.Sessions.Destroy(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.KV.Acquire(ctx, "locks/a", []byte("them"), other); !ok {
		t.Fatal("not released by destroying its session")
	}
	if info, _ := c.Sessions.Info(ctx, sid); info != nil {
		t.Fatal(info)
	}
	if _, err := c.Sessions.Create(ctx, "", "1x", nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad ttl: %v", err)
	}
}

func TestPrefixWatchSurvivesAnAgentRestart(t *testing.T) {
	a := startAgent(t)
	c := dial(t, a.grpcAddr)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _ = c.KV.Put(ctx, "w/a", []byte("1"))
	w := c.KV.Watch(ctx, "w/", true, 0)
	if got := keys(next(t, w).State); strings.Join(got, ",") != "w/a" {
		t.Fatal(got)
	}
	var seen, removed []string
	record := func(ch Change[*pb.KvPair]) {
		for _, k := range keys(ch.Upserted) {
			seen = append(seen, k+"="+string(ch.Upserted[k].GetValue()))
		}
		removed = append(removed, ch.Removed...)
	}
	_, _ = c.KV.Put(ctx, "w/b", []byte("2"))
	record(next(t, w))
	a.restart() // same ports and data: the watch reconnects and resumes
	// The connection may still be in its reconnect backoff: the first write waits for it.
	waitUntil(t, "a write after the restart", func() bool {
		ok, err := c.KV.Put(ctx, "w/c", []byte("3"))
		return ok && err == nil
	})
	_, _ = c.KV.Delete(ctx, "w/a", false)
	_, _ = c.KV.Put(ctx, "w/end", nil)
	for len(seen) == 0 || seen[len(seen)-1] != "w/end=" {
		record(next(t, w))
	}
	if strings.Join(seen, " ") != "w/b=2 w/c=3 w/end=" || strings.Join(removed, " ") != "w/a" {
		t.Fatalf("missed or repeated: seen %v removed %v", seen, removed)
	}
}

// proxy is a TCP proxy whose connections can be cut, as a network failure would, and
// that can refuse new ones for a while (the network stays down).
type proxy struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	refused bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			refused := p.refused
			p.mu.Unlock()
			if refused {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { p.cut(); ln.Close() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// down cuts every connection and refuses new ones until up.
func (p *proxy) down() {
	p.mu.Lock()
	p.refused = true
	p.mu.Unlock()
	p.cut()
}

func (p *proxy) up() {
	p.mu.Lock()
	p.refused = false
	p.mu.Unlock()
}

func TestAResetAfterCompactionIsHandledByAResync(t *testing.T) {
	a := startAgent(t)
	p := newProxy(t, a.grpcAddr)
	direct := dial(t, a.grpcAddr)
	defer direct.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _ = direct.KV.Put(ctx, "r/keep", []byte("1"))
	_, _ = direct.KV.Put(ctx, "r/gone", []byte("1"))
	c := dial(t, p.ln.Addr().String())
	defer c.Close()
	w := c.KV.Watch(ctx, "r/", true, 0)
	if got := keys(next(t, w).State); strings.Join(got, ",") != "r/gone,r/keep" {
		t.Fatal(got)
	}
	// The network goes down (the watch keeps trying to reconnect); meanwhile more
	// happens than the server keeps history of.
	p.down()
	for i := 0; i < 40; i++ {
		_, _ = direct.KV.Put(ctx, fmt.Sprintf("r/%d", i%4), []byte(strconv.Itoa(i)+strings.Repeat("x", 1024)))
	}
	_, _ = direct.KV.Delete(ctx, "r/gone", false)
	p.up()
	ch := next(t, w)
	if !ch.Resynced {
		t.Fatal("expected a resync after RESET")
	}
	if got := strings.Join(keys(ch.State), ","); got != "r/0,r/1,r/2,r/3,r/keep" {
		t.Fatal(got)
	}
	if got := strings.Join(keys(ch.Upserted), ","); got != "r/0,r/1,r/2,r/3" {
		t.Fatalf("r/keep did not change: %s", got)
	}
	if strings.Join(ch.Removed, ",") != "r/gone" {
		t.Fatal(ch.Removed)
	}
}

// TestHelperContender is one contender of the lock test, run as its own process.
func TestHelperContender(t *testing.T) {
	addr := os.Getenv("ROSTRA_CONTEND_ADDR")
	if addr == "" {
		t.Skip("run by TestTwoProcessesNeverHoldALockTogether")
	}
	c := dial(t, addr)
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		h, err := c.Lock(ctx, "jobs/nightly", 1)
		if err != nil {
			t.Fatal(err)
		}
		kv, _ := c.KV.Get(ctx, "fenced")
		var held, cas uint64
		if kv != nil {
			held, _ = strconv.ParseUint(string(kv.GetValue()), 10, 64)
			cas = kv.GetModifyIndex()
		}
		if h.Token <= held {
			t.Fatalf("token %d after %d", h.Token, held)
		}
		ok, err := c.KV.CAS(ctx, "fenced", []byte(strconv.FormatUint(h.Token, 10)), cas)
		fmt.Printf("ROUND %d %d %v %v\n", os.Getpid(), h.Token, ok, err)
		h.Release()
		<-h.Lost()
	}
}

func TestTwoProcessesNeverHoldALockTogether(t *testing.T) {
	a := startAgent(t)
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i := range outs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperContender$", "-test.v")
			cmd.Env = append(os.Environ(), "ROSTRA_CONTEND_ADDR="+a.grpcAddr)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("contender: %v\n%s", err, out)
			}
			outs[i] = string(out)
		}(i)
	}
	wg.Wait()
	tokens := map[string]bool{}
	pids := map[string]bool{}
	for _, out := range outs {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 5 && f[0] == "ROUND" {
				if f[3] != "true" {
					t.Fatalf("a fenced CAS failed: an overlap: %s", line)
				}
				tokens[f[2]] = true
				pids[f[1]] = true
			}
		}
	}
	if len(tokens) != 10 || len(pids) != 2 {
		t.Fatalf("tokens %v pids %v", tokens, pids)
	}
}

func TestAnEventFiredIsSeenByAWatcher(t *testing.T) {
	a := startAgent(t)
	c := dial(t, a.grpcAddr)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := c.Events.Watch(ctx, "deploy", 0)
	if len(next(t, w).State) != 0 {
		t.Fatal("events before any was fired")
	}
	fired, err := c.Events.Fire(ctx, "deploy", []byte("v42"), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ch := next(t, w)
	e := ch.Upserted[fmt.Sprint(fired.GetLtime())]
	if e == nil || string(e.GetPayload()) != "v42" {
		t.Fatal(ch.Upserted)
	}
	if _, err := c.Events.Fire(ctx, "deploy", nil, "(", "", ""); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestCatalogAndHealthWatchesSeeARegistration(t *testing.T) {
	a := startAgent(t)
	c := dial(t, a.grpcAddr)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	services := c.Catalog.WatchServices(ctx, 0)
	health := c.Health.WatchService(ctx, "web", false, 0)
	if _, ok := next(t, services).State["web"]; ok {
		t.Fatal("web before it was registered")
	}
	if len(next(t, health).State) != 0 {
		t.Fatal("instances before any was registered")
	}
	if err := c.Catalog.Register(ctx, "n1", "10.0.0.1", &pb.ServiceInstance{Id: "web1", Name: "web", Port: 80, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	// The agent's own first sync (its node and service "consul") may land after the
	// watch's snapshot: skip updates that are not about web.
	var web *pb.ServiceSummary
	for web == nil {
		web = next(t, services).Upserted["web"]
	}
	if tags := web.GetTags(); strings.Join(tags, ",") != "v1" {
		t.Fatal(tags)
	}
	if e := next(t, health).Upserted["n1/web1"]; e.GetService().GetPort() != 80 {
		t.Fatal(e)
	}
	cancel() // ends both watches
	if _, ok := <-health.Changes(); ok {
		t.Fatal("a cancelled watch delivered")
	}
	if err := health.Err(); err != nil {
		t.Fatal(err)
	}
}
