package probe

import (
	"context"
	"sync"
	"time"
)

// Outcome is what one availability request saw.
type Outcome struct {
	OK bool
	// Lost means the result did not come back (an exec stream that broke):
	// nothing was observed about the target, so it counts neither as up
	// nor as down.
	Lost     bool
	HTTPCode int
	RemoteIP string
	Error    string
	// Latency, when set, is the target's own measure of the request (curl's
	// time_total in a pod, without the exec around it).
	Latency time.Duration
}

// WatchTarget is one thing `probe watch` sends steady requests to, once
// per family it is probed in.
type WatchTarget struct {
	// Name is how reports name it.
	Name string
	// Families it is probed in: both for a name, one for a literal address.
	Families []Family
	// Probe makes one request over family f. It returns when ctx ends.
	Probe func(ctx context.Context, f Family) Outcome
}

// Sample is one request: when it started, over which family, to which
// target, and what came back how fast.
type Sample struct {
	Time     time.Time
	Family   Family
	Target   string
	OK       bool
	Lost     bool
	Latency  time.Duration
	HTTPCode int
	RemoteIP string
	Error    string
}

// Mark is a named stretch of the run (an upgrade phase), drawn on the
// timeline and reported on its own.
type Mark struct {
	Name       string
	Start, End time.Time
}

// Watcher sends a request per target and family every Interval, records
// every one and says, per family and target, what it saw.
type Watcher struct {
	Targets  []WatchTarget
	Interval time.Duration
	// MaxInFlight bounds the requests of one target and family waiting for
	// an answer at once (a black-holed path answers only at the timeout);
	// a tick that finds it full is skipped. Default 16.
	MaxInFlight int
	// OnSample, when set, sees every sample as it is recorded (the live
	// line, the log of transitions). It must not block.
	OnSample func(Sample)

	mu      sync.Mutex
	start   time.Time
	end     time.Time
	samples []Sample
	marks   []Mark
	now     func() time.Time
}

func (w *Watcher) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// Run probes until ctx ends, then waits for the requests in flight and
// returns. A request cut short by the end of the run is not recorded: it
// saw the run stop, not the target.
func (w *Watcher) Run(ctx context.Context) {
	w.mu.Lock()
	w.start = w.clock()
	w.mu.Unlock()
	limit := w.MaxInFlight
	if limit <= 0 {
		limit = 16
	}
	var lanes sync.WaitGroup
	for _, t := range w.Targets {
		for _, f := range t.Families {
			lanes.Go(func() { w.lane(ctx, t, f, limit) })
		}
	}
	lanes.Wait()
	w.mu.Lock()
	w.end = w.clock()
	w.mu.Unlock()
}

func (w *Watcher) lane(ctx context.Context, t WatchTarget, f Family, limit int) {
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	slots := make(chan struct{}, limit)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case slots <- struct{}{}:
			inflight.Go(func() {
				defer func() { <-slots }()
				start := w.clock()
				out := t.Probe(ctx, f)
				if ctx.Err() != nil {
					return
				}
				latency := out.Latency
				if latency == 0 {
					latency = w.clock().Sub(start)
				}
				w.record(Sample{Time: start, Family: f, Target: t.Name, OK: out.OK, Lost: out.Lost,
					Latency: latency, HTTPCode: out.HTTPCode, RemoteIP: out.RemoteIP, Error: out.Error})
			})
		default: // every slot waits for an answer: skip this tick
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *Watcher) record(s Sample) {
	w.mu.Lock()
	w.samples = append(w.samples, s)
	w.mu.Unlock()
	if w.OnSample != nil {
		w.OnSample(s)
	}
}

// Begin marks the start of a named stretch (an upgrade phase); End closes
// it. A stretch still open when the report is made ends with the run.
func (w *Watcher) Begin(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks = append(w.marks, Mark{Name: name, Start: w.clock()})
}

// End closes the last open stretch of that name.
func (w *Watcher) End(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.marks) - 1; i >= 0; i-- {
		if w.marks[i].Name == name && w.marks[i].End.IsZero() {
			w.marks[i].End = w.clock()
			return
		}
	}
}

// Samples returns a copy of every sample so far, in the order recorded.
func (w *Watcher) Samples() []Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Sample(nil), w.samples...)
}
