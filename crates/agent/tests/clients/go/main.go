// A JetStream application as a nats.go user writes it, for InfiniStream's client
// matrix (crates/agent/tests/cluster_clients.rs). Over ONE connection it creates a
// stream, publishes with PubAck, fetches from a pull consumer with acks, uses a KV
// bucket (put/get/update with revision/watch) and an object store (put/get).
//
// Usage: client URL NAME TAG. NAME is the connection name (routing suffix included),
// TAG makes the stream and bucket names unique. On success it prints
// "OK hops=<connections made> servers=<distinct server ids>"; otherwise the error on
// stderr and a non-zero exit.
//
// Built offline against Debian's golang-github-nats-io-go-nats-dev (nats.go 1.22.1) in
// GOPATH mode: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// hops counts the connections the client made and the servers it saw.
type hops struct {
	mu          sync.Mutex
	connections int
	servers     map[string]bool
}

func (h *hops) connected(nc *nats.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connections++
	if id := nc.ConnectedServerId(); id != "" {
		h.servers[id] = true
	}
}

func (h *hops) report() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("hops=%d servers=%d", h.connections, len(h.servers))
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: client URL NAME TAG")
		os.Exit(2)
	}
	h := &hops{servers: map[string]bool{}}
	if err := run(os.Args[1], os.Args[2], os.Args[3], h); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL (%s): %v\n", h.report(), err)
		os.Exit(1)
	}
	fmt.Printf("OK %s\n", h.report())
}

func run(url, name, tag string, h *hops) error {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(10),
		nats.ReconnectHandler(h.connected),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "disconnected: %v\n", err)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	h.connected(nc)
	js, err := nc.JetStream(nats.MaxWait(20 * time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	// A stream, and publishes acked in order.
	stream := "S_" + tag
	subject := "s." + tag
	if _, err := js.AddStream(&nats.StreamConfig{Name: stream, Subjects: []string{subject + ".>"}}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	const count = 5
	for i := 1; i <= count; i++ {
		ack, err := js.Publish(fmt.Sprintf("%s.%d", subject, i), []byte(fmt.Sprintf("m%d", i)))
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		if ack.Stream != stream || ack.Sequence != uint64(i) {
			return fmt.Errorf("publish %d: PubAck %+v, want stream %s sequence %d", i, ack, stream, i)
		}
	}

	// A pull consumer: fetch everything in order, ack each message.
	sub, err := js.PullSubscribe(subject+".>", "worker", nats.BindStream(stream), nats.AckExplicit())
	if err != nil {
		return fmt.Errorf("pull subscribe: %w", err)
	}
	next := uint64(1)
	for next <= count {
		msgs, err := sub.Fetch(count, nats.MaxWait(10*time.Second))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for _, m := range msgs {
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			if meta.Sequence.Stream != next {
				return fmt.Errorf("fetched stream sequence %d, want %d", meta.Sequence.Stream, next)
			}
			if err := m.AckSync(); err != nil {
				return fmt.Errorf("ack %d: %w", next, err)
			}
			next++
		}
	}
	info, err := sub.ConsumerInfo()
	if err != nil {
		return fmt.Errorf("consumer info: %w", err)
	}
	if info.AckFloor.Stream != count || info.NumAckPending != 0 {
		return fmt.Errorf("consumer after acks: ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
	}

	// KV: put, get, update with the right and a stale revision, watch an update arrive.
	kv, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: "kv_" + tag, History: 3})
	if err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	rev1, err := kv.Put("k", []byte("v1"))
	if err != nil {
		return fmt.Errorf("kv put: %w", err)
	}
	entry, err := kv.Get("k")
	if err != nil {
		return fmt.Errorf("kv get: %w", err)
	}
	if string(entry.Value()) != "v1" || entry.Revision() != rev1 {
		return fmt.Errorf("kv get: %q at %d, want v1 at %d", entry.Value(), entry.Revision(), rev1)
	}
	rev2, err := kv.Update("k", []byte("v2"), rev1)
	if err != nil {
		return fmt.Errorf("kv update: %w", err)
	}
	if rev2 <= rev1 {
		return fmt.Errorf("kv update: revision %d after %d", rev2, rev1)
	}
	if _, err := kv.Update("k", []byte("stale"), rev1); err == nil {
		return fmt.Errorf("kv update with stale revision %d succeeded", rev1)
	}
	watcher, err := kv.Watch("k")
	if err != nil {
		return fmt.Errorf("kv watch: %w", err)
	}
	defer watcher.Stop()
	if err := expectWatch(watcher, "v2"); err != nil {
		return err
	}
	// The end of the initial values.
	if err := expectWatch(watcher, ""); err != nil {
		return err
	}
	if _, err := kv.Put("k", []byte("v3")); err != nil {
		return fmt.Errorf("kv put: %w", err)
	}
	if err := expectWatch(watcher, "v3"); err != nil {
		return err
	}

	// Object store: a multi-chunk object round-trips.
	obs, err := js.CreateObjectStore(&nats.ObjectStoreConfig{Bucket: "obj_" + tag})
	if err != nil {
		return fmt.Errorf("create object store: %w", err)
	}
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if _, err := obs.PutBytes("blob", data); err != nil {
		return fmt.Errorf("object put: %w", err)
	}
	back, err := obs.GetBytes("blob")
	if err != nil {
		return fmt.Errorf("object get: %w", err)
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("object get: %d bytes differ from the %d put", len(back), len(data))
	}
	return nil
}

// expectWatch waits for the watcher's next entry: value `want`, or the nil marker that
// ends the initial values when `want` is empty.
func expectWatch(w nats.KeyWatcher, want string) error {
	select {
	case e := <-w.Updates():
		switch {
		case want == "" && e != nil:
			return fmt.Errorf("kv watch: %q, want the end of initial values", e.Value())
		case want != "" && e == nil:
			return fmt.Errorf("kv watch: end of initial values, want %q", want)
		case want != "" && string(e.Value()) != want:
			return fmt.Errorf("kv watch: %q, want %q", e.Value(), want)
		}
		return nil
	case <-time.After(20 * time.Second):
		return fmt.Errorf("kv watch: nothing within 20s, want %q", want)
	}
}
