package llmrollupprocessor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// memoryStorage is a storage extension whose one client outlives the processors using it (the disk of
// file_storage across a restart); failSet makes writes fail.
type memoryStorage struct {
	component.StartFunc
	component.ShutdownFunc
	data    map[string][]byte
	failSet bool
}

func (m *memoryStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return m, nil
}

func (m *memoryStorage) Get(_ context.Context, key string) ([]byte, error) { return m.data[key], nil }

func (m *memoryStorage) Set(_ context.Context, key string, value []byte) error {
	if m.failSet {
		return errors.New("disk full")
	}
	m.data[key] = value
	return nil
}

func (m *memoryStorage) Delete(_ context.Context, key string) error { delete(m.data, key); return nil }
func (m *memoryStorage) Batch(context.Context, ...*storage.Operation) error {
	return errors.New("not used")
}
func (m *memoryStorage) Close(context.Context) error { return nil }

var storageID = component.MustNewID("file_storage")

// plainExtension is an extension that keeps no storage.
type plainExtension struct {
	component.StartFunc
	component.ShutdownFunc
}

// hostWith is a host with the given extensions.
type hostWith map[component.ID]component.Component

func (h hostWith) GetExtensions() map[component.ID]component.Component { return h }

// withStorage is a harness whose processor keeps its checkpoint in disk, started.
func withStorage(t *testing.T, disk *memoryStorage) *harness {
	t.Helper()
	h := newHarness(t, func(c *Config) { c.Storage = &storageID })
	if err := h.p.Start(context.Background(), hostWith{storageID: disk}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(h.p.stop) // the release loop only: a crashed run never shuts down
		h.p.done.Wait()
	})
	return h
}

// TestCrashCountedOnNextStart: a run that ends without Shutdown while holding traces has them counted as lost
// by the next run, as of its last tick; traces that arrived after the tick are not in the count.
func TestCrashCountedOnNextStart(t *testing.T) {
	disk := &memoryStorage{data: map[string][]byte{}}
	crashed := withStorage(t, disk)
	crashed.consume(t, apiBatch(1))
	crashed.consume(t, workerBatch(2))
	crashed.p.saveCheckpoint(context.Background()) // a tick of the release loop
	crashed.consume(t, apiBatch(3))                // after the last tick: not in the count
	next := withStorage(t, disk)
	if got := next.metric(t, metricTracesLost, ""); got != 2 {
		t.Fatalf("traces_lost = %v, want 2", got)
	}
	if got := next.metric(t, metricSpansLost, ""); got != 3 {
		t.Fatalf("spans_lost = %v, want 3", got)
	}
	again := withStorage(t, disk) // the next run set the record to what it holds: nothing
	if again.metric(t, metricTracesLost, "") != 0 {
		t.Fatal("a loss counted twice")
	}
}

// TestShutdownLeavesNothingToCount: after a Shutdown (which forwards everything) the next run counts nothing.
func TestShutdownLeavesNothingToCount(t *testing.T) {
	disk := &memoryStorage{data: map[string][]byte{}}
	h := newHarness(t, func(c *Config) { c.Storage = &storageID })
	if err := h.p.Start(context.Background(), hostWith{storageID: disk}); err != nil {
		t.Fatal(err)
	}
	h.consume(t, apiBatch(1))
	h.p.saveCheckpoint(context.Background())
	if err := h.p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := withStorage(t, disk)
	if next.metric(t, metricTracesLost, "") != 0 || next.metric(t, metricSpansLost, "") != 0 {
		t.Fatal("a clean shutdown counted as a loss")
	}
}

// TestCheckpointWriteFailureKeepsProcessing: a storage that refuses writes is logged, and spans still flow.
func TestCheckpointWriteFailureKeepsProcessing(t *testing.T) {
	disk := &memoryStorage{data: map[string][]byte{}, failSet: true}
	h := withStorage(t, disk)
	h.consume(t, apiBatch(1))
	h.p.saveCheckpoint(context.Background())
	if !h.p.checkpoint.failing {
		t.Fatal("a failed write not noticed")
	}
	h.clock.advance(time.Minute)
	h.p.releaseDue(context.Background())
	if h.sink.SpanCount() != 1 {
		t.Fatal("the held trace did not leave")
	}
	h.consume(t, apiBatch(2))
	disk.failSet = false
	h.p.saveCheckpoint(context.Background())
	if h.p.checkpoint.failing || len(disk.data[checkpointKey]) != 16 {
		t.Fatal("not recovered after the storage did")
	}
}

// TestStorageMustBeAStorageExtension: a missing or wrong extension fails Start, naming it.
func TestStorageMustBeAStorageExtension(t *testing.T) {
	for _, host := range []component.Host{componenttest.NewNopHost(), hostWith{storageID: plainExtension{}}} {
		h := newHarness(t, func(c *Config) { c.Storage = &storageID })
		if err := h.p.Start(context.Background(), host); err == nil || !strings.Contains(err.Error(), `"file_storage"`) {
			t.Fatalf("want an error naming file_storage, got %v", err)
		}
	}
}
