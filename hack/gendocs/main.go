// Command gendocs writes the command reference: `make docs` runs it.
//
//	go run ./hack/gendocs -markdown docs/commands -man bin/man/man1
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmdref"
)

func main() {
	markdown := flag.String("markdown", "docs/commands", "directory for the Markdown reference (its old *.md pages are removed first)")
	man := flag.String("man", "", "directory for the man pages (none when empty)")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*markdown, *man); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(markdown, man string) error {
	// A command that was removed must not leave its page behind.
	old, err := filepath.Glob(filepath.Join(markdown, "*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := cmdref.Markdown(markdown); err != nil {
		return err
	}
	if man == "" {
		return nil
	}
	return cmdref.Man(man)
}
