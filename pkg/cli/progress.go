package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress reports long waits on stderr. On a terminal it keeps one line
// with a spinner and the elapsed time, rewritten in place; elsewhere (CI,
// pipes, files) it prints a line only when the message changes, so logs stay
// short and greppable.
type Progress struct {
	w        io.Writer
	tty      bool
	mu       sync.Mutex
	msg      string
	start    time.Time
	frame    int
	stop     chan struct{}
	stopped  chan struct{}
	now      func() time.Time
	interval time.Duration
}

var spinner = []string{"|", "/", "-", `\`}

// NewProgress writes to w (normally stderr), animated only on a terminal.
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, tty: IsTerminal(w), now: time.Now, interval: 150 * time.Millisecond}
}

// Terminal tells whether the progress is shown on a terminal (one line,
// rewritten in place) rather than as a log.
func (p *Progress) Terminal() bool { return p.tty }

// Start begins a step: "msg ..." and, on a terminal, a spinner until Done.
func (p *Progress) Start(msg string) {
	p.Done("") // a step left running ends here
	p.mu.Lock()
	p.msg, p.start = msg, p.now()
	if !p.tty {
		fmt.Fprintf(p.w, "%s ...\n", msg)
		p.mu.Unlock()
		return
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go p.animate(p.stop, p.stopped)
}

// Update changes what the running step says (e.g. "2/3 conditions met").
func (p *Progress) Update(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg == p.msg {
		return
	}
	p.msg = msg
	if !p.tty {
		fmt.Fprintf(p.w, "  %s\n", msg)
	}
}

// Done ends the running step with a result line (none when result is "").
func (p *Progress) Done(result string) {
	p.mu.Lock()
	stop, stopped := p.stop, p.stopped
	p.stop, p.stopped = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
		fmt.Fprint(p.w, "\r\033[K")
	}
	if result != "" {
		fmt.Fprintln(p.w, result)
	}
}

func (p *Progress) animate(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.mu.Lock()
		elapsed := p.now().Sub(p.start).Round(time.Second)
		fmt.Fprintf(p.w, "\r\033[K%s %s (%s)", spinner[p.frame%len(spinner)], p.msg, elapsed)
		p.frame++
		p.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
