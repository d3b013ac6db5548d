package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// ProcessTB lets code written for tests (the apiserver and etcd test servers
// take a testing.TB) run in a long-lived program such as the sandbox. Cleanup
// functions run, last first, when Close is called; Fatal panics with a
// fatalError that RecoverFatal turns back into an error.
type ProcessTB struct {
	testing.TB // never set: only gives the interface's unexported method

	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	logf     func(format string, args ...any)
}

// NewProcessTB logs through logf (nil discards logs).
func NewProcessTB(name string, logf func(format string, args ...any)) *ProcessTB {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &ProcessTB{name: name, logf: logf}
}

type fatalError struct{ msg string }

// RecoverFatal converts a ProcessTB.Fatal panic into an error; use as
// `defer harness.RecoverFatal(&err)`.
func RecoverFatal(err *error) {
	if r := recover(); r != nil {
		if f, ok := r.(fatalError); ok {
			*err = fmt.Errorf("%s", f.msg)
			return
		}
		panic(r)
	}
}

// Close runs the cleanups in reverse order.
func (p *ProcessTB) Close() {
	p.mu.Lock()
	fns := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func (p *ProcessTB) Attr(string, string) {}
func (p *ProcessTB) Chdir(dir string) {
	if err := os.Chdir(dir); err != nil {
		p.Fatal(err)
	}
}
func (p *ProcessTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *ProcessTB) Error(args ...any) { p.failed = true; p.logf("%s", fmt.Sprint(args...)) }
func (p *ProcessTB) Errorf(format string, args ...any) {
	p.failed = true
	p.logf(format, args...)
}
func (p *ProcessTB) Fail()             { p.failed = true }
func (p *ProcessTB) FailNow()          { panic(fatalError{msg: "failed"}) }
func (p *ProcessTB) Failed() bool      { return p.failed }
func (p *ProcessTB) Fatal(args ...any) { panic(fatalError{msg: fmt.Sprint(args...)}) }
func (p *ProcessTB) Fatalf(format string, args ...any) {
	panic(fatalError{msg: fmt.Sprintf(format, args...)})
}
func (p *ProcessTB) Helper()                          {}
func (p *ProcessTB) Log(args ...any)                  { p.logf("%s", fmt.Sprint(args...)) }
func (p *ProcessTB) Logf(format string, args ...any)  { p.logf(format, args...) }
func (p *ProcessTB) Name() string                     { return p.name }
func (p *ProcessTB) Setenv(key, value string)         { _ = os.Setenv(key, value) }
func (p *ProcessTB) Skip(args ...any)                 { p.Fatal(args...) }
func (p *ProcessTB) Skipf(format string, args ...any) { p.Fatalf(format, args...) }
func (p *ProcessTB) SkipNow()                         { p.FailNow() }
func (p *ProcessTB) Skipped() bool                    { return false }
func (p *ProcessTB) TempDir() string {
	dir, err := os.MkdirTemp("", "dualstack-sandbox-")
	if err != nil {
		p.Fatal(err)
	}
	p.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
func (p *ProcessTB) Context() context.Context { return context.Background() }
func (p *ProcessTB) Output() io.Writer        { return io.Discard }
func (p *ProcessTB) ArtifactDir() string      { return p.TempDir() }

// testingTB is what etcd's test server takes: *testing.T or a ProcessTB.
type testingTB = testing.TB
