// Package cli holds the conventions every command of the suite shares: exit
// codes, output formats, confirmation of mutations and progress on stderr.
package cli

import (
	"errors"
	"fmt"
)

// Exit codes, the same for every command.
const (
	ExitOK       = 0 // everything checked or done
	ExitFailed   = 1 // a check or an operation failed
	ExitBadUsage = 2 // bad flags, arguments or input
)

// UsageError is bad input from the user: an unknown flag, a malformed value,
// a missing argument. It exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError; the message should say what to do instead.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// SilentFailure reports that a command already told the user what failed (a
// report with FAIL rows, say): main exits 1 without printing anything more.
var SilentFailure = errors.New("one or more checks failed")

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitBadUsage
	}
	return ExitFailed
}
