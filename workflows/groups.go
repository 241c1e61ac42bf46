package workflows

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// Group writes (MaxCompute; gated by versionGroupWrites).
//
// A loop's planned ranges are written as group batches: one PrepareWrite
// and one WritePartition for the ranges of all its partitions that have
// one, into one upload session per destination partition, recorded by one
// ledger row. At 256 partitions and a 60 s flush that is a session, a
// block and a commit per loop per flush, inside the tunnel's quotas, where
// a write per partition needed five times the quota.
//
// A group is fixed once prepared: every member's Pending holds the group
// (sink.Member ranges) and the shared sessions, and the group is only ever
// written whole, by the loop of its leader (its first member whose pending
// range is still the group's), so blocks and the ledger row come out the
// same on every attempt; the other members' loops wait for it. A
// connector resumed from the sink gets the same groups back (sink.Pending
// .Group). A group fails as one: throttled, it waits and is written again;
// a member's records deleted by retention park that member as data-lost
// and dissolve the group (nothing was committed: the intent is recorded
// after every range is read); any other failure routes or parks every
// member as a single write's failure does. The price: members share their
// write, so one whose reads stall (a broker refusing its fetches) holds up
// the others' ranges of that flush, where separate writes let them go on;
// a partition whose fetches already fail when the loop plans is not
// planned, and the others go on without it.
const versionGroupWrites = "group-writes"

// groupWrites reports whether this run writes group batches: a MaxCompute
// connector, in a run that recorded versionGroupWrites. Decided once per
// run.
func (c *conn) groupWrites(ctx workflow.Context) bool {
	if c.spec.Sink.Type != connector.SinkMaxCompute {
		return false
	}
	if c.grouped == nil {
		v := workflow.GetVersion(ctx, versionGroupWrites, workflow.DefaultVersion, 1) == 1
		c.grouped = &v
	}
	return *c.grouped
}

// follower says p's pending range belongs to a group led by another
// partition, whose loop writes it: the group's first member whose pending
// range is still the group's leads.
func (c *conn) follower(p *PartitionState) bool {
	if p.Pending == nil || len(p.Pending.Group) == 0 {
		return false
	}
	for _, m := range p.Pending.Group {
		if m.Partition == p.Partition {
			return false
		}
		if q := find(c.st.Partitions, m.Partition); q != nil && q.Pending != nil && slices.Equal(q.Pending.Group, p.Pending.Group) {
			return true
		}
	}
	return false
}

// writeRanges writes the pending ranges of ps (loop i's): as group batches
// when the run writes them, else one write per partition (writeAll).
func (c *conn) writeRanges(ctx workflow.Context, ps []*PartitionState) []activities.Cursor {
	if len(ps) == 0 {
		return nil
	}
	if !c.groupWrites(ctx) {
		return c.writeAll(ctx, ps)
	}
	// Groups already prepared, led from here; the other ranges form new
	// groups of at most MaxDestinationPartitions destination partitions.
	var groups [][]*PartitionState
	var fresh []*PartitionState
	for _, p := range ps {
		switch {
		case c.follower(p):
		case len(p.Pending.Group) > 0:
			groups = append(groups, c.groupMembers(p.Pending.Group))
		default:
			fresh = append(fresh, p)
		}
	}
	parts := map[string]bool{}
	var cur []*PartitionState
	for _, p := range fresh {
		n := 0
		for _, pt := range p.Pending.Parts {
			if !parts[pt] {
				n++
			}
		}
		if len(cur) > 0 && len(parts)+n > activities.MaxDestinationPartitions {
			groups = append(groups, cur)
			cur, parts = nil, map[string]bool{}
		}
		cur = append(cur, p)
		for _, pt := range p.Pending.Parts {
			parts[pt] = true
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	moved := make([][]activities.Cursor, len(groups))
	wg := workflow.NewWaitGroup(ctx)
	for i, g := range groups {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			moved[i] = c.writeGroup(ctx, g)
		})
	}
	wg.Wait(ctx)
	var out []activities.Cursor
	for _, m := range moved {
		out = append(out, m...)
	}
	return out
}

// groupMembers are the partition states of group g's members whose
// pending range is still g's.
func (c *conn) groupMembers(g []sink.Member) []*PartitionState {
	var out []*PartitionState
	for _, m := range g {
		if p := find(c.st.Partitions, m.Partition); p != nil && p.Pending != nil && slices.Equal(p.Pending.Group, g) {
			out = append(out, p)
		}
	}
	return out
}

// dissolve ends group g: its members' ranges are written again in new
// groups, with new sessions. Only for a group nothing of which can be
// committed.
func (c *conn) dissolve(g []sink.Member) {
	for _, p := range c.groupMembers(g) {
		p.Pending.Group, p.Pending.Sessions = nil, nil
	}
}

// writeGroup writes the ranges of ps as one group batch (see
// versionGroupWrites) and returns the cursors of the partitions that
// moved. ps[0] leads: a prepared group's members are ps in Group's order.
func (c *conn) writeGroup(ctx workflow.Context, ps []*PartitionState) []activities.Cursor {
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		c.busy[p.Partition]++
	}
	defer func() {
		for _, p := range ps {
			c.busy[p.Partition]--
		}
	}()
	writeCtx := writeOptions(ctx)
	lead := ps[0].Pending
	group := lead.Group
	if len(group) == 0 {
		for _, p := range ps {
			group = append(group, sink.Member{Partition: p.Partition, Start: p.Start, First: p.Pending.First, End: p.Pending.End, Epoch: p.Epoch})
		}
	}
	// The destination partitions: the members' and, for a prepared group,
	// those of its sessions (a member no longer pending wrote there too).
	var parts []string
	add := func(pt string) {
		if !slices.Contains(parts, pt) {
			parts = append(parts, pt)
		}
	}
	for _, s := range lead.Sessions {
		add(s.Partition)
	}
	for _, p := range ps {
		for _, pt := range p.Pending.Parts {
			add(pt)
		}
	}
	slices.Sort(parts)
	var (
		res activities.WriteResult
		err error
	)
	for attempt := 0; ; attempt++ {
		if len(lead.Sessions) == 0 || hasExpired(lead) {
			var prep activities.PrepareResult
			m := group[0]
			err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).PrepareWrite, activities.PrepareInput{
				SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Partition: m.Partition, Start: m.Start,
				First: m.First, End: m.End, Parts: parts, Keep: liveSessions(lead), Writer: c.writer, SkipAt: -1, TopicID: c.st.TopicID, Epoch: m.Epoch,
				Group: group,
			}).Get(ctx, &prep)
			if err != nil {
				break
			}
			// From here the group is fixed: its members keep it, and the
			// shared sessions, until it is written.
			for _, p := range ps {
				p.Pending.Group, p.Pending.Sessions = group, prep.Prepared.Sessions
			}
		}
		m := group[0]
		res = activities.WriteResult{}
		err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).WritePartition, activities.WriteInput{
			SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Partition: m.Partition, Start: m.Start,
			First: m.First, End: m.End, Prepared: &sink.Prepared{Sessions: lead.Sessions}, SkipAt: -1, Writer: c.writer, TopicID: c.st.TopicID, Epoch: m.Epoch,
			Group: group,
		}).Get(ctx, &res)
		if err != nil || len(res.Expired) == 0 {
			break
		}
		for _, p := range ps {
			for i := range p.Pending.Sessions {
				s := &p.Pending.Sessions[i]
				s.Committed = slices.Contains(res.Committed, s.Partition)
				if slices.Contains(res.Expired, s.Partition) {
					s.ID = ""
				}
			}
		}
		if attempt >= 3 {
			err = temporal.NewApplicationError(fmt.Sprintf("upload sessions of %v expired %d times in a row", res.Expired, attempt+1), "SessionExpired")
			break
		}
	}
	if err == nil {
		var moved []activities.Cursor
		c.addCounts(res.Transform)
		for _, mr := range res.Members {
			p := find(ps, mr.Partition)
			if p == nil {
				continue
			}
			pend := p.Pending
			p.Pending = nil
			c.wrote(p, activities.WriteResult{End: mr.End, Written: sink.Written{Objects: res.Written.Objects, Records: mr.Records, Bytes: mr.Bytes}, DeadLetters: mr.DeadLetters})
			if pend.Poison != nil {
				c.park(p, pend.Poison)
			}
			if mr.End > pend.First {
				moved = append(moved, cursor(p))
			}
		}
		return moved
	}
	if errType(err) == "DataLost" {
		// Retention deleted records of one member's range before the group
		// was read whole: nothing of it was committed. That member parks
		// as data-lost; the others are written again in new groups.
		var (
			end  int64
			part int32 = -1
		)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.HasDetails() {
			_ = appErr.Details(&end, &part)
		}
		c.dissolve(group)
		if p := find(ps, part); p != nil {
			c.dataLost(p, sink.Range{First: p.Next, End: max(end, p.Next)})
			p.Pending = nil
		}
		return nil
	}
	msg := "write: " + errMessage(err) + fmt.Sprintf(" (in a group batch of %d partitions)", len(ps))
	for _, p := range ps {
		p.LastError = msg
	}
	if c.throttled(ctx, err, ps...) {
		return nil
	}
	if c.spec.Errors.Tolerance == connector.ToleranceStop || nonRetryable(err) {
		for _, p := range ps {
			p.Stopped = true
			p.LastError += "; fix the cause, then signal resume"
		}
		return nil
	}
	// Each member's range is routed on its own; rows of sessions already
	// committed stay out of the error-data topic.
	var moved []activities.Cursor
	for _, p := range ps {
		if c.route(ctx, p, err) {
			moved = append(moved, cursor(p))
		}
	}
	return moved
}
