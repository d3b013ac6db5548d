package mesh

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
)

// How a mesh config edit was made.
const (
	EditTextual     = "textual"     // lines added or one line changed; every other byte kept
	EditReformatted = "reformatted" // parsed and written back by sigs.k8s.io/yaml
)

// MeshEdit is the mesh config text with
// defaultConfig.proxyMetadata.ISTIO_DUAL_STACK: "true".
type MeshEdit struct {
	Text    string
	Changed bool
	Edit    string   // EditTextual or EditReformatted; "" when unchanged
	Diff    []string // "-old line", "+new line"
}

// EnableProxyDualStack sets defaultConfig.proxyMetadata.ISTIO_DUAL_STACK
// to the string "true" in a mesh config (the YAML of the istio ConfigMap's
// mesh key), keeping every other setting. It edits the text where it can
// (a line or three added, or the one line of the variable changed) and
// checks the result: parsed, it must be the original's settings with just
// that one set. When the textual edit cannot be made so (flow style, odd
// indentation), it writes back the parsed settings instead, which keeps
// them all but not the comments and key order: Edit says which.
//
// The value must be the string "true": proxyMetadata is a
// map<string,string> in Istio's MeshConfig, read as protobuf JSON, in
// which an unquoted YAML true is no string.
func EnableProxyDualStack(text string) (MeshEdit, error) {
	orig := map[string]any{}
	if err := yaml.Unmarshal([]byte(text), &orig); err != nil {
		return MeshEdit{}, fmt.Errorf("the mesh config is not YAML this tool can read: %w", err)
	}
	if orig == nil {
		orig = map[string]any{}
	}
	want, err := withProxyDualStack(orig)
	if err != nil {
		return MeshEdit{}, err
	}
	if reflect.DeepEqual(orig, want) {
		return MeshEdit{Text: text}, nil
	}
	if edited, diff, ok := textualEdit(text); ok {
		got := map[string]any{}
		if yaml.Unmarshal([]byte(edited), &got) == nil && reflect.DeepEqual(got, want) {
			return MeshEdit{Text: edited, Changed: true, Edit: EditTextual, Diff: diff}, nil
		}
	}
	b, err := yaml.Marshal(want)
	if err != nil {
		return MeshEdit{}, fmt.Errorf("writing the mesh config back: %w", err)
	}
	return MeshEdit{Text: string(b), Changed: true, Edit: EditReformatted, Diff: lineDiff(text, string(b))}, nil
}

// withProxyDualStack is a deep copy of m with the variable set.
func withProxyDualStack(m map[string]any) (map[string]any, error) {
	out := deepCopyMap(m)
	dc, err := childMap(out, "defaultConfig")
	if err != nil {
		return nil, err
	}
	pm, err := childMap(dc, "proxyMetadata")
	if err != nil {
		return nil, fmt.Errorf("defaultConfig: %w", err)
	}
	if v, ok := pm[istio.DualStackEnv].(string); ok && strings.EqualFold(v, "true") {
		return out, nil
	}
	pm[istio.DualStackEnv] = "true"
	return out, nil
}

// childMap returns m[key] as a map, creating it when absent or null.
func childMap(m map[string]any, key string) (map[string]any, error) {
	switch v := m[key].(type) {
	case nil:
		c := map[string]any{}
		m[key] = c
		return c, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("%s is a %T, not a map", key, v)
	}
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		c := make([]any, len(x))
		for i := range x {
			c[i] = deepCopyValue(x[i])
		}
		return c
	default:
		return x
	}
}

var (
	reDefaultConfig      = regexp.MustCompile(`^defaultConfig:[ \t]*(#.*)?\r?\n?$`)
	reDefaultConfigEmpty = regexp.MustCompile(`^defaultConfig:[ \t]*(\{\}|null|~)?[ \t]*(#.*)?\r?\n?$`)
	reProxyMetadata      = regexp.MustCompile(`^ *proxyMetadata:[ \t]*(#.*)?\r?\n?$`)
	reProxyMetadataEmpty = regexp.MustCompile(`^ *proxyMetadata:[ \t]*(\{\}|null|~)[ \t]*(#.*)?\r?\n?$`)
	reDualStackVar       = regexp.MustCompile(`^ *["']?` + istio.DualStackEnv + `["']?[ \t]*:`)
)

const dualStackValue = `"true"`

// textualEdit makes the change in the block-style YAML the Istio charts
// and istioctl write; ok=false when the text has another shape. The caller
// checks the result by parsing it.
func textualEdit(text string) (string, []string, bool) {
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	variable := func(indent int) string {
		return strings.Repeat(" ", indent) + istio.DualStackEnv + ": " + dualStackValue + "\n"
	}
	// insertAfter puts block after line i (-1: at the start), keeping a
	// last line without a line ending so.
	insertAfter := func(i int, block string) (string, []string, bool) {
		out := append([]string{}, lines[:i+1]...)
		if i >= 0 && !strings.HasSuffix(out[i], "\n") {
			out[i] += "\n"
			block = strings.TrimSuffix(block, "\n")
		}
		out = append(out, block)
		out = append(out, lines[i+1:]...)
		return strings.Join(out, ""), addedLines(block), true
	}
	replace := func(i int, block string) (string, []string, bool) {
		if !strings.HasSuffix(lines[i], "\n") {
			block = strings.TrimSuffix(block, "\n")
		}
		out := append([]string{}, lines[:i]...)
		out = append(out, block)
		out = append(out, lines[i+1:]...)
		diff := append([]string{"-" + strings.TrimRight(lines[i], "\r\n")}, addedLines(block)...)
		return strings.Join(out, ""), diff, true
	}

	dc := -1
	for i, l := range lines {
		if indentOf(l) == 0 && strings.HasPrefix(l, "defaultConfig:") {
			dc = i
			break
		}
	}
	if dc < 0 {
		// No defaultConfig: append it.
		block := "defaultConfig:\n  proxyMetadata:\n" + variable(4)
		return insertAfter(len(lines)-1, block)
	}
	if !reDefaultConfig.MatchString(lines[dc]) {
		if reDefaultConfigEmpty.MatchString(lines[dc]) {
			return replace(dc, "defaultConfig:\n  proxyMetadata:\n"+variable(4))
		}
		return "", nil, false // flow style, or a value on the line
	}
	end := blockEnd(lines, dc, 0)
	ci := childIndent(lines, dc, end, 2)
	pm := -1
	for i := dc + 1; i < end; i++ {
		if isContent(lines[i]) && indentOf(lines[i]) == ci && strings.HasPrefix(strings.TrimLeft(lines[i], " "), "proxyMetadata:") {
			pm = i
			break
		}
	}
	if pm < 0 {
		return insertAfter(dc, strings.Repeat(" ", ci)+"proxyMetadata:\n"+variable(ci+2))
	}
	switch {
	case reProxyMetadataEmpty.MatchString(lines[pm]):
		return replace(pm, strings.Repeat(" ", ci)+"proxyMetadata:\n"+variable(ci+2))
	case !reProxyMetadata.MatchString(lines[pm]):
		return "", nil, false
	}
	pend := blockEnd(lines, pm, ci)
	gi := childIndent(lines, pm, pend, ci+2)
	for i := pm + 1; i < pend; i++ {
		if isContent(lines[i]) && indentOf(lines[i]) == gi && reDualStackVar.MatchString(lines[i]) {
			return replace(i, variable(gi))
		}
	}
	return insertAfter(pm, variable(gi))
}

// blockEnd is the index after the last line nested under the line at
// header (indented more than indent; blank lines and comments included).
// Trailing blank lines and comments are left outside.
func blockEnd(lines []string, header, indent int) int {
	end := header + 1
	for i := header + 1; i < len(lines); i++ {
		if !isContent(lines[i]) {
			continue
		}
		if indentOf(lines[i]) <= indent {
			break
		}
		end = i + 1
	}
	return end
}

// childIndent is the indentation of the first content line in
// (header, end), or def when there is none.
func childIndent(lines []string, header, end, def int) int {
	for i := header + 1; i < end; i++ {
		if isContent(lines[i]) {
			return indentOf(lines[i])
		}
	}
	return def
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

func isContent(l string) bool {
	t := strings.TrimSpace(l)
	return t != "" && !strings.HasPrefix(t, "#")
}

func addedLines(block string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(block, "\n"), "\n") {
		out = append(out, "+"+l)
	}
	return out
}

// lineDiff is a crude diff for a reformatted text: every old line removed,
// every new one added.
func lineDiff(a, b string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(a, "\n"), "\n") {
		if a != "" {
			out = append(out, "-"+l)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(b, "\n"), "\n") {
		out = append(out, "+"+l)
	}
	return out
}
