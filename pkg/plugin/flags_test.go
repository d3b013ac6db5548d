package plugin

import (
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// TestFlagsAgreeAcrossCommands walks the command tree: a flag name means
// one thing everywhere (one value type), the flags of a shared concept
// have the same help wording, and the old names of a concept are hidden
// deprecated aliases, never a second visible name.
func TestFlagsAgreeAcrossCommands(t *testing.T) {
	root := NewRootCmd(InvocationFrom("kubectl-dualstack"), genericiooptions.NewTestIOStreamsDiscard())
	type use struct{ cmd, typ, usage string }
	uses := map[string][]use{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				// The root's hidden flags are klog's and kubectl's own.
				if c != root && f.Deprecated == "" {
					t.Errorf("%s --%s is hidden but not marked deprecated with its new name", c.CommandPath(), f.Name)
				}
				return
			}
			uses[f.Name] = append(uses[f.Name], use{c.CommandPath(), f.Value.Type(), f.Usage})
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)

	// The same wording wherever the concept appears.
	sameWording := map[string]bool{"yes": true, "dry-run": true, "ingress-service": true, "max-unavailable": false}
	// Old names of a concept: only as hidden aliases.
	retired := map[string]string{"service": "ingress-service"}
	names := make([]string, 0, len(uses))
	for n := range uses {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		us := uses[name]
		for _, u := range us[1:] {
			if u.typ != us[0].typ {
				t.Errorf("--%s is a %s on %s but a %s on %s", name, us[0].typ, us[0].cmd, u.typ, u.cmd)
			}
			if sameWording[name] && u.usage != us[0].usage {
				t.Errorf("--%s help differs:\n  %s: %s\n  %s: %s", name, us[0].cmd, us[0].usage, u.cmd, u.usage)
			}
		}
		if newName, ok := retired[name]; ok {
			t.Errorf("--%s is visible on %s: it is the old name of --%s", name, us[0].cmd, newName)
		}
		if name == "dns-server" {
			for _, u := range us {
				if !strings.Contains(u.usage, "host or host:port") || !strings.Contains(u.usage, "$"+DNSServerEnv) {
					t.Errorf("%s --dns-server does not say its format and default: %s", u.cmd, u.usage)
				}
			}
		}
	}
	if len(uses["dns-server"]) < 4 || len(uses["ingress-service"]) < 2 {
		t.Errorf("the walk missed commands: dns-server on %d, ingress-service on %d", len(uses["dns-server"]), len(uses["ingress-service"]))
	}
}
