package llmrollupprocessor

import (
	"context"
	"encoding/binary"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// checkpointKey is the one record the processor keeps in its storage client.
const checkpointKey = "held"

// heldCounts is what the processor holds: traces and spans waiting for their release.
type heldCounts struct{ traces, spans int64 }

// checkpoint keeps, in a storage extension (the `storage` setting), how many traces and spans the processor
// holds, so that its next run can count what a run ended without Shutdown (kill -9, an OOM kill, a lost node)
// lost from memory (otelcol_processor_llm_rollup_traces_lost / spans_lost). The release loop writes the record
// at most once per tick and only when the counts changed (never on ConsumeTraces' path); after Shutdown
// forwarded everything it is zero. So the count is as of the last tick before the crash (at most
// wait_duration/4 old, 1 s at most): what arrived after it is not in it, what left for the next stage after it
// (still in the collector's memory) is.
type checkpoint struct {
	client  storage.Client
	saved   heldCounts
	failing bool // the last save failed (the processor logs a failure once until a save succeeds)
}

// openCheckpoint gets the storage client of the processor `id` from the extension `storageID`.
func openCheckpoint(ctx context.Context, host component.Host, storageID, id component.ID) (*checkpoint, error) {
	ext, ok := host.GetExtensions()[storageID]
	if !ok {
		return nil, fmt.Errorf("storage: no extension %q in service.extensions", storageID)
	}
	store, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage: extension %q is not a storage extension", storageID)
	}
	client, err := store.GetClient(ctx, component.KindProcessor, id, "")
	if err != nil {
		return nil, fmt.Errorf("storage: extension %q: %w", storageID, err)
	}
	return &checkpoint{client: client}, nil
}

// previous is what the last run held when it ended: zero after a Shutdown, or when there was no last run.
func (c *checkpoint) previous(ctx context.Context) (heldCounts, error) {
	data, err := c.client.Get(ctx, checkpointKey)
	if err != nil || len(data) != 16 {
		return heldCounts{}, err
	}
	c.saved = heldCounts{int64(binary.BigEndian.Uint64(data)), int64(binary.BigEndian.Uint64(data[8:]))}
	return c.saved, nil
}

// save writes the counts when they differ from the last written.
func (c *checkpoint) save(ctx context.Context, now heldCounts) error {
	if now == c.saved {
		return nil
	}
	data := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(now.traces))
	data = binary.BigEndian.AppendUint64(data, uint64(now.spans))
	if err := c.client.Set(ctx, checkpointKey, data); err != nil {
		return err
	}
	c.saved = now
	return nil
}
