package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IsTerminal reports whether a stream is an interactive terminal. Colours,
// spinners and prompts depend on it; pipes, files and CI get plain text.
func IsTerminal(s any) bool {
	f, ok := s.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// colour codes used for statuses, only ever written to a terminal.
const (
	ansiRed    = "\033[31m"
	ansiGreen  = "\033[32m"
	ansiYellow = "\033[33m"
	ansiGrey   = "\033[90m"
	ansiReset  = "\033[0m"
)

// Painter colours words when its writer is a terminal and NO_COLOR is unset.
type Painter struct{ enabled bool }

// NewPainter decides once, for w, whether colour is wanted.
func NewPainter(w io.Writer) Painter {
	_, noColor := os.LookupEnv("NO_COLOR")
	return Painter{enabled: IsTerminal(w) && !noColor}
}

func (p Painter) paint(code, s string) string {
	if !p.enabled {
		return s
	}
	return code + s + ansiReset
}

// Red, Green, Yellow and Grey wrap s in that colour when enabled.
func (p Painter) Red(s string) string    { return p.paint(ansiRed, s) }
func (p Painter) Green(s string) string  { return p.paint(ansiGreen, s) }
func (p Painter) Yellow(s string) string { return p.paint(ansiYellow, s) }
func (p Painter) Grey(s string) string   { return p.paint(ansiGrey, s) }
