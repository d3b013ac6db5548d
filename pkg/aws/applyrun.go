package aws

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// stages group the phases that run together. A phase waits for another
// only where it depends on it: the VPC's /56 and the egress-only gateway
// come first (everything else uses them); a subnet's AssignIpv6AddressOnCreation
// and the addresses of the ENIs in it need only that subnet's /64, which
// they wait for one subnet at a time (applyRun.waitReady), so they run
// alongside the subnet /64s, routes and rules. Planned instance type
// changes keep the strict order: addresses come after them. Each result is
// the indexes of the stage's changes, in plan order.
func stages(changes []Change) [][]int {
	groups := [][]int{{PhaseVPC}, {PhaseSubnetsRules, PhaseSubnetAttrs, PhaseAddresses}}
	if slices.ContainsFunc(changes, func(c Change) bool { return c.Phase == PhaseInstanceType }) {
		groups = [][]int{{PhaseVPC}, {PhaseSubnetsRules, PhaseSubnetAttrs}, {PhaseInstanceType}, {PhaseAddresses}}
	}
	var out [][]int
	placed := map[int]bool{}
	for _, g := range groups {
		var idx []int
		for i, c := range changes {
			if slices.Contains(g, c.Phase) {
				idx = append(idx, i)
				placed[i] = true
			}
		}
		if len(idx) > 0 {
			out = append(out, idx)
		}
	}
	for i := range changes { // a phase this code does not know runs last, alone
		if !placed[i] {
			out = append(out, []int{i})
		}
	}
	return out
}

// applyRun is one Apply's shared state: the lanes of a stage run
// concurrently and meet here.
type applyRun struct {
	a       *applier
	o       ApplyOptions
	changes []Change
	results []Result
	entries []journal.Entry

	mu     sync.Mutex
	failed []string
	abort  chan struct{} // closed at the first failure
	done   int
	// has64 and ready are per subnet, set before the stage's lanes start
	// (the maps are read-only while they run): has64 is closed once the
	// subnet's /64 is associated in this stage, ready once that and its
	// AssignIpv6AddressOnCreation are done (what ENI addresses wait for);
	// a subnet with none of them planned has no channel (ready already).
	has64, ready map[string]chan struct{}
	need         map[string]int // ready's changes not done yet, under mu
	// unrecorded are the changes made whose done record is not written
	// yet: they go with the next journal write of any lane.
	unrecorded []int
	// ops is the running stage's progress by operation, for Status.
	ops      []OpProgress
	unitLeft map[string]int // calls not yet made, by operation

	journalMu sync.Mutex // one journal write at a time
}

func (r *applyRun) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failed) > 0
}

func (r *applyRun) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failed)
}

// fail records a failure (r.mu not held).
func (r *applyRun) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLocked(msg)
}

func (r *applyRun) failLocked(msg string) {
	if len(r.failed) == 0 {
		close(r.abort)
	}
	r.failed = append(r.failed, msg)
}

// skipRest marks every change without a result as not attempted.
func (r *applyRun) skipRest() {
	for i := range r.results {
		if r.results[i].Status == "" {
			r.results[i] = resultOf(r.changes[i], StatusSkipped, "not attempted: an earlier change failed")
		}
	}
}

// units are the calls of one lane: a change each, except the rules of one
// security group and direction, which go in one call.
func units(changes []Change, idx []int) [][]int {
	var out [][]int
	group := map[string]int{} // group ID -> its unit
	for _, i := range idx {
		c := changes[i]
		if !isRuleChange(c.Operation) {
			out = append(out, []int{i})
			continue
		}
		if u, ok := group[c.Parameters["groupId"]]; ok {
			out[u] = append(out[u], i)
			continue
		}
		group[c.Parameters["groupId"]] = len(out)
		out = append(out, []int{i})
	}
	return out
}

func isRuleChange(op string) bool {
	return op == "AuthorizeSecurityGroupIngress" || op == "AuthorizeSecurityGroupEgress"
}

// runStage runs one lane per operation at once: an API's calls wait for
// its own limit (the pacer), never behind another API's.
func (r *applyRun) runStage(ctx context.Context, stage []int) {
	var ops []string
	byOp := map[string][]int{}
	for _, i := range stage {
		op := r.changes[i].Operation
		if byOp[op] == nil {
			ops = append(ops, op)
		}
		byOp[op] = append(byOp[op], i)
	}
	// A subnet's /64 first: the changes that wait for it go in the order
	// the /64s are made, so the first ones start at once.
	r.has64, r.ready, r.need = map[string]chan struct{}{}, map[string]chan struct{}{}, map[string]int{}
	order := map[string]int{}
	for n, i := range byOp["AssociateSubnetCidrBlock"] {
		s := r.changes[i].Parameters["subnetId"]
		r.has64[s] = make(chan struct{})
		order[s] = n + 1
	}
	for _, op := range []string{"AssociateSubnetCidrBlock", "ModifySubnetAttribute"} {
		for _, i := range byOp[op] {
			s := r.changes[i].Parameters["subnetId"]
			if r.ready[s] == nil {
				r.ready[s] = make(chan struct{})
			}
			r.need[s]++
		}
	}
	for _, op := range []string{"ModifySubnetAttribute", "AssignIpv6Addresses"} {
		sort.SliceStable(byOp[op], func(x, y int) bool {
			return order[r.changes[byOp[op][x]].Parameters["subnetId"]] < order[r.changes[byOp[op][y]].Parameters["subnetId"]]
		})
	}
	lanes := make([][][]int, len(ops))
	r.ops = make([]OpProgress, len(ops))
	r.unitLeft = map[string]int{}
	for n, op := range ops {
		lanes[n] = units(r.changes, byOp[op])
		r.ops[n] = OpProgress{Operation: op, Service: serviceName(serviceOf(op)), Total: len(byOp[op])}
		r.unitLeft[op] = len(lanes[n])
	}
	r.report(true)
	var wg sync.WaitGroup
	for _, lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.lane(ctx, lane)
		}()
	}
	wg.Wait()
	r.flush(ctx)
}

// write makes one journal write: es, and every done record not written
// yet. A failed write fails the changes whose done records it carried.
func (r *applyRun) write(ctx context.Context, es []journal.Entry) error {
	r.mu.Lock()
	done := r.unrecorded
	r.unrecorded = nil
	sort.Ints(done)
	all := make([]journal.Entry, 0, len(done)+len(es))
	for _, i := range done {
		all = append(all, r.entries[i])
	}
	all = append(all, es...)
	r.mu.Unlock()
	if len(all) == 0 {
		return nil
	}
	r.journalMu.Lock()
	err := r.o.Journal.PutAll(ctx, all)
	r.journalMu.Unlock()
	if err != nil {
		r.mu.Lock()
		notRecorded(r.results, done, err)
		r.failLocked(err.Error())
		r.mu.Unlock()
	}
	return err
}

// flush writes the stage's last done records, even after Ctrl-C: what was
// made must be recorded.
func (r *applyRun) flush(ctx context.Context) {
	if r.o.DryRunServer {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = r.write(wctx, nil)
}

// serviceOf is the SDK's service ID of an operation of the plan.
func serviceOf(op string) string {
	if op == "SetIpAddressType" {
		return serviceELBv2
	}
	return serviceEC2
}

// lane makes one operation's calls: a batch of changes waits for what it
// needs (waitReady), is recorded as pending (with the done records made so
// far) in one journal write, then made, at most Parallel calls at once.
func (r *applyRun) lane(ctx context.Context, units [][]int) {
	limit := r.o.Parallel
	if r.changes[units[0][0]].Phase == PhaseInstanceType {
		limit = 1 // never more than one instance down at a time
	}
	for next := 0; next < len(units) && !r.stopped() && ctx.Err() == nil; {
		end, n := next, 0
		for end < len(units) && (n == 0 || n+len(units[end]) <= r.o.Batch) {
			n += len(units[end])
			end++
		}
		// Waited for before the pending records: what they record of the
		// state before (recordBefore) is read once the subnets are ready.
		if !r.waitReady(ctx, units[next:end]) {
			return
		}
		var write []journal.Entry
		var run [][]int
		var batch []int
		for _, unit := range units[next:end] {
			var ok []int
			for _, i := range unit {
				c, err := r.a.resolve(r.changes[i])
				r.changes[i] = c
				switch {
				case err != nil && r.o.DryRunServer:
					r.finish(i, resultOf(c, StatusNotChecked, "depends on an earlier change: "+err.Error()), nil)
				case err != nil:
					r.finish(i, resultOf(c, StatusFailed, fmt.Sprintf("%s %s: %v", c.Operation, c.Resource, err)), nil)
				default:
					ok = append(ok, i)
					r.entries[i] = pendingEntry(c)
					write = append(write, r.entries[i])
				}
			}
			if len(ok) > 0 {
				run = append(run, ok)
				batch = append(batch, ok...)
			}
		}
		next = end
		if !r.o.DryRunServer {
			err := r.a.recordBefore(ctx, r.changes, r.entries, batch)
			if err != nil {
				write = nil
			}
			if werr := r.write(ctx, write); err == nil {
				err = werr
			}
			if err != nil {
				for _, i := range batch {
					c := r.changes[i]
					r.finish(i, resultOf(c, StatusFailed, fmt.Sprintf("%s %s not attempted: %v", c.Operation, c.Resource, err)), nil)
				}
				run = nil
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(limit)
		for _, unit := range run {
			g.Go(func() error {
				if limit == 1 && r.stopped() {
					// One instance at a time, and none after one failed: a
					// second node must not go down while the first is in doubt.
					for _, i := range unit {
						r.finish(i, resultOf(r.changes[i], StatusSkipped, "not attempted: an earlier instance type change failed"), nil)
					}
					return nil
				}
				results, undos := r.a.make(gctx, r.changes, unit)
				for k, i := range unit {
					r.finish(i, results[k], undos[k])
				}
				r.madeCall(r.changes[unit[0]].Operation)
				return nil
			})
		}
		_ = g.Wait()
	}
}

// waitReady waits until the subnets the units' changes need are ready:
// a subnet attribute waits for the subnet's /64, an ENI address for that
// and the attribute, a load balancer for every subnet's /64. False: they
// must not be made (a change failed, or ctx is done).
func (r *applyRun) waitReady(ctx context.Context, units [][]int) bool {
	var wait []chan struct{}
	for _, unit := range units {
		c := r.changes[unit[0]]
		switch c.Operation {
		case "ModifySubnetAttribute":
			wait = append(wait, r.has64[c.Parameters["subnetId"]])
		case "AssignIpv6Addresses":
			wait = append(wait, r.ready[c.Parameters["subnetId"]])
		case "SetIpAddressType":
			for _, ch := range r.has64 {
				wait = append(wait, ch)
			}
		}
	}
	for _, ch := range wait {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-r.abort:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// finish records change i's result; undo (for an applied change) goes in
// its journal entry, to be written with the next write.
func (r *applyRun) finish(i int, res Result, undo map[string]string) {
	r.mu.Lock()
	r.results[i] = res
	switch res.Status {
	case StatusFailed:
		r.failLocked(res.Error)
	case StatusApplied:
		for k, v := range undo {
			r.entries[i].Undo[k] = v
		}
		r.entries[i].State = journal.Done
		r.unrecorded = append(r.unrecorded, i)
	}
	if c := r.changes[i]; res.Status != StatusFailed && res.Status != StatusSkipped {
		s := c.Parameters["subnetId"]
		switch c.Operation {
		case "AssociateSubnetCidrBlock":
			close(r.has64[s])
			fallthrough
		case "ModifySubnetAttribute":
			if r.need[s]--; r.need[s] == 0 {
				close(r.ready[s])
			}
		}
	}
	r.done++
	for n := range r.ops {
		if r.ops[n].Operation == res.Operation {
			r.ops[n].Done++
		}
	}
	done := r.done
	r.mu.Unlock()
	if r.o.Progress != nil {
		r.o.Progress(done, len(r.changes), res)
	}
	r.report(false)
}

// madeCall counts one call of op made.
func (r *applyRun) madeCall(op string) {
	r.mu.Lock()
	r.unitLeft[op]--
	r.mu.Unlock()
}

// report tells Status where the stage is.
func (r *applyRun) report(starting bool) {
	if r.o.Status == nil {
		return
	}
	r.mu.Lock()
	st := Status{Starting: starting, Ops: slices.Clone(r.ops)}
	left := map[string]int{}
	for op, n := range r.unitLeft {
		left[op] = n
	}
	r.mu.Unlock()
	if p := r.a.c.Pacer; p != nil {
		for n := range st.Ops {
			o := &st.Ops[n]
			o.Left, o.Paced = p.Estimate(serviceOf(o.Operation), o.Operation, left[o.Operation])
		}
	}
	r.o.Status(st)
}

// OpProgress is how far one operation of the running stage is.
type OpProgress struct {
	Operation   string
	Service     string // EC2, ELB: whose limit paces it
	Done, Total int    // changes
	// Left is how long the calls still to make take at the API's current
	// pace (0: within its burst); Paced says calls wait for the API's limit
	// now, rather than for AWS's answers.
	Left  time.Duration
	Paced bool
}

// Status is where an apply is: the operations of the stage running.
type Status struct {
	Starting bool // the stage starts: nothing of it is done yet
	Ops      []OpProgress
}

// Line is the one line a terminal shows: the operation that takes longest,
// e.g. "AssignIpv6Addresses 840/2000, ~2m10s left (paced by EC2's limit)".
func (s Status) Line() string {
	var slow *OpProgress
	for n := range s.Ops {
		o := &s.Ops[n]
		if o.Done == o.Total {
			continue
		}
		if slow == nil || o.Left > slow.Left || (o.Left == slow.Left && o.Total-o.Done > slow.Total-slow.Done) {
			slow = o
		}
	}
	if slow == nil {
		return ""
	}
	line := fmt.Sprintf("%s %d/%d", slow.Operation, slow.Done, slow.Total)
	if slow.Left >= time.Second {
		line += ", ~" + slow.Left.Round(time.Second).String() + " left"
	}
	if slow.Paced {
		line += " (paced by " + slow.Service + "'s limit)"
	}
	return line
}

// Summary is the one line for a stage where no terminal shows progress:
// what it makes and, when the APIs' limits make it last, for how long at
// least, e.g. "200 AssociateSubnetCidrBlock, 2000 AssignIpv6Addresses: at
// least ~6m20s at EC2's documented limits".
func (s Status) Summary() string {
	line := ""
	var longest time.Duration
	service := ""
	for n, o := range s.Ops {
		if n > 0 {
			line += ", "
		}
		line += fmt.Sprintf("%d %s", o.Total, o.Operation)
		if o.Left > longest {
			longest, service = o.Left, o.Service
		}
	}
	if longest >= time.Second {
		line += fmt.Sprintf(": at least ~%s at %s's limits", longest.Round(time.Second), service)
	}
	return line
}

// StatusPrinter shows an apply's Status through update (a progress line):
// on a terminal the line of the slowest operation, rewritten as it goes;
// elsewhere one line per stage.
func StatusPrinter(update func(string), tty bool) func(Status) {
	return func(s Status) {
		switch {
		case tty:
			if l := s.Line(); l != "" {
				update(l)
			}
		case s.Starting:
			update(s.Summary())
		}
	}
}
