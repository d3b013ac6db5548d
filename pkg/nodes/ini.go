package nodes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The families cloud-provider-aws knows, spelled as it compares them
// (exactly, lower case: pkg/providers/v1/aws.go getInstanceNodeAddress).
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// nodeIPFamiliesKey is the variable, as written by the OpenShift installer;
// gcfg matches variable names case-insensitively.
const nodeIPFamiliesKey = "NodeIPFamilies"

// ErrSyntax marks a cloud config this package will not edit because it
// cannot read it the way gcfg would (the CCM might read it otherwise).
var ErrSyntax = errors.New("cloud config syntax")

// lineKind is what one line of a gcfg (git-config style) file is.
type lineKind int

const (
	lineBlank lineKind = iota
	lineComment
	lineSection
	lineVariable
)

// iniLine is one line of the text, with its byte offsets, so an edit can
// splice new lines in and leave every other byte alone.
type iniLine struct {
	start, end int    // the content, without its line ending
	eol        string // "\n", "\r\n", or "" for a last line without one
	kind       lineKind
	// section is the lower-cased name of the section the line is in (or
	// opens); "" before the first header. sub is its quoted subsection.
	section string
	hasSub  bool
	// key is a variable's lower-cased name; value its value as gcfg reads
	// it (quotes and escapes resolved, comment and outer blanks dropped).
	key   string
	value string
	// noAssign is a variable without "=": for a multi-valued variable gcfg
	// takes it as "blank", which empties the list.
	noAssign bool
	// indent is the line's leading blanks; sep what stands between a
	// variable's name and its value (" = "); quoted whether the value was.
	indent, sep string
	quoted      bool
}

// cloudConfig is a parsed cloud config: its lines over the original text.
type cloudConfig struct {
	text  string
	lines []iniLine
}

// parseCloudConfig reads text as gcfg would for what this package needs:
// sections (names case-insensitive), variables (names case-insensitive,
// values with double quotes, backslash escapes and ; or # comments), full
// line comments. What gcfg would refuse, or this reader cannot be sure it
// reads as gcfg does (a line continued with a trailing backslash, a
// variable before the first section), is an ErrSyntax naming the line.
func parseCloudConfig(text string) (*cloudConfig, error) {
	cc := &cloudConfig{text: text}
	section, hasSub := "", false
	for pos, n := 0, 1; pos < len(text); n++ {
		l := iniLine{start: pos}
		nl := strings.IndexByte(text[pos:], '\n')
		if nl < 0 {
			l.end, pos = len(text), len(text)
		} else {
			l.end, l.eol, pos = pos+nl, "\n", pos+nl+1
			if l.end > l.start && text[l.end-1] == '\r' {
				l.end--
				l.eol = "\r\n"
			}
		}
		content := text[l.start:l.end]
		body := strings.TrimLeft(content, " \t")
		l.indent = content[:len(content)-len(body)]
		switch {
		case strings.TrimRight(body, " \t\r") == "":
			l.kind = lineBlank
		case body[0] == ';' || body[0] == '#':
			l.kind = lineComment
		case body[0] == '[':
			name, sub, err := parseHeader(body)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d %q: %v", ErrSyntax, n, content, err)
			}
			l.kind = lineSection
			section, hasSub = strings.ToLower(name), sub
		default:
			if section == "" {
				return nil, fmt.Errorf("%w: line %d %q: a variable before the first [section]", ErrSyntax, n, content)
			}
			if err := parseVariable(body, &l); err != nil {
				return nil, fmt.Errorf("%w: line %d %q: %v", ErrSyntax, n, content, err)
			}
			l.kind = lineVariable
		}
		l.section, l.hasSub = section, hasSub
		cc.lines = append(cc.lines, l)
	}
	return cc, nil
}

// parseHeader reads `[name]` or `[name "subsection"]`, with an optional
// comment after it.
func parseHeader(body string) (name string, hasSub bool, err error) {
	inner := body[1:]
	q := false
	end := -1
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\\' && q:
			i++
		case c == '"':
			q = !q
		case c == ']' && !q:
			end = i
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return "", false, errors.New("a section header without its closing ]")
	}
	if rest := strings.TrimSpace(strings.TrimRight(inner[end+1:], "\r")); rest != "" && rest[0] != ';' && rest[0] != '#' {
		return "", false, errors.New("text after the section header")
	}
	head := strings.TrimSpace(inner[:end])
	name, sub, found := strings.Cut(head, " ")
	if !found {
		name, sub, found = strings.Cut(head, "\t")
	}
	if name == "" || !isName(name) {
		return "", false, fmt.Errorf("%q is not a section name", name)
	}
	if found {
		sub = strings.TrimSpace(sub)
		if len(sub) < 2 || sub[0] != '"' || sub[len(sub)-1] != '"' {
			return "", false, errors.New("a subsection name must be in double quotes")
		}
	}
	return name, found, nil
}

// isName is gcfg's rule for section and variable names: a letter, then
// letters, digits and dashes.
func isName(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

// parseVariable reads `name`, `name = value` (comments allowed after).
func parseVariable(body string, l *iniLine) error {
	i := 0
	for i < len(body) && body[i] != '=' && body[i] != ' ' && body[i] != '\t' && body[i] != ';' && body[i] != '#' && body[i] != '\r' {
		i++
	}
	name := body[:i]
	if !isName(name) {
		return fmt.Errorf("%q is not a variable name", name)
	}
	l.key = strings.ToLower(name)
	j := i
	for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
		j++
	}
	if j == len(body) || body[j] == ';' || body[j] == '#' || strings.TrimRight(body[j:], "\r") == "" {
		l.noAssign = true
		return nil
	}
	if body[j] != '=' {
		return errors.New("expected = after the variable name")
	}
	j++
	for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
		j++
	}
	l.sep = body[i:j]
	v, quoted, err := parseValue(body[j:])
	l.value, l.quoted = v, quoted
	return err
}

// parseValue resolves quotes and escapes, drops a trailing comment and
// the unquoted blanks at the end, as gcfg's scanner does.
func parseValue(raw string) (string, bool, error) {
	var b strings.Builder
	q, quoted := false, false
	pendingBlank := 0 // unquoted blanks seen, kept only if more follows
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\r' && i == len(raw)-1:
			continue
		case c == '\\':
			if i+1 >= len(raw) || raw[i+1] == '\r' {
				return "", quoted, errors.New("a value continued on the next line (trailing backslash): edit it by hand")
			}
			i++
			b.WriteString(strings.Repeat(" ", pendingBlank))
			pendingBlank = 0
			switch raw[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case '\\', '"':
				b.WriteByte(raw[i])
			default:
				return "", quoted, fmt.Errorf("unknown escape \\%c", raw[i])
			}
		case c == '"':
			b.WriteString(strings.Repeat(" ", pendingBlank))
			pendingBlank = 0
			q, quoted = !q, true
		case q:
			b.WriteByte(c)
		case c == ';' || c == '#':
			return b.String(), quoted, nil
		case c == ' ' || c == '\t':
			pendingBlank++
		default:
			b.WriteString(strings.Repeat(" ", pendingBlank))
			pendingBlank = 0
			b.WriteByte(c)
		}
	}
	if q {
		return "", quoted, errors.New("a double quote without its closing quote")
	}
	return b.String(), quoted, nil
}

// isNodeIPFamilies tells the lines that set NodeIPFamilies: in [Global]
// (any case, any number of [Global] sections: gcfg reads them as one),
// never in a subsection.
func (l iniLine) isNodeIPFamilies() bool {
	return l.kind == lineVariable && l.section == "global" && !l.hasSub && l.key == "nodeipfamilies"
}

// families is NodeIPFamilies as the CCM gets it: every value in order; a
// variable without "=" empties the list (gcfg's rule for multi-valued
// variables). Empty means the CCM's default, ipv4 only.
func (cc *cloudConfig) families() []string {
	var out []string
	for _, l := range cc.lines {
		if !l.isNodeIPFamilies() {
			continue
		}
		if l.noAssign {
			out = nil
			continue
		}
		out = append(out, l.value)
	}
	return out
}

// Families is NodeIPFamilies as cloud-provider-aws reads it from text: nil
// when it is not set (the CCM then uses ipv4 only).
func Families(text string) ([]string, error) {
	cc, err := parseCloudConfig(text)
	if err != nil {
		return nil, err
	}
	return cc.families(), nil
}

// Effective is what the CCM uses: the families set, or its default.
func Effective(families []string) []string {
	if len(families) == 0 {
		return []string{FamilyIPv4}
	}
	return families
}

// Edit is the change AddDualStack makes.
type Edit struct {
	// Text is the new cloud config; equal to the input when nothing is
	// needed.
	Text string
	// Added are the lines added, without their line endings.
	Added []string
	// Diff is Added as a unified diff hunk with no context ("@@ -4,0 +5,2 @@",
	// then "+" lines); empty when nothing is added.
	Diff []string
	// Target is NodeIPFamilies after the edit.
	Target []string
}

// AddDualStack gives text's [Global] section NodeIPFamilies of both
// families, keeping the one(s) it has first, and leaves every other byte
// as it was: comments, order, other keys and sections, line endings, a
// missing newline at the end.
//
//   - not set: ipv4 then ipv6 are added after the last variable of the
//     first [Global] section (right after its header if it has none);
//   - ipv4 only (or ipv6 only): the other family is added after the last
//     NodeIPFamilies line;
//   - both: nothing;
//   - no [Global] section: one is added at the top.
//
// A value cloud-provider-aws does not know (it compares "ipv4" and "ipv6"
// exactly, so "IPv6" or "ipv4,ipv6" is ignored) is an error: such a file
// is for a person to fix, not for this tool to add to.
func AddDualStack(text string) (Edit, error) {
	cc, err := parseCloudConfig(text)
	if err != nil {
		return Edit{}, err
	}
	cur := cc.families()
	for _, f := range cur {
		if f != FamilyIPv4 && f != FamilyIPv6 {
			return Edit{}, fmt.Errorf("NodeIPFamilies has the value %q, which cloud-provider-aws does not recognise (it compares the values with \"ipv4\" and \"ipv6\" exactly, one value per NodeIPFamilies line): correct it by hand, then run again", f)
		}
	}
	var add []string
	switch {
	case len(cur) == 0:
		add = []string{FamilyIPv4, FamilyIPv6}
	case !slices.Contains(cur, FamilyIPv6):
		add = []string{FamilyIPv6}
	case !slices.Contains(cur, FamilyIPv4):
		add = []string{FamilyIPv4}
	default:
		return Edit{Text: text, Target: cur}, nil
	}
	target := append(slices.Clone(cur), add...)
	eol := cc.dominantEOL()

	// Where, and in what style: copy the last NodeIPFamilies line, else
	// the last variable of the first [Global] section.
	anchor, style := -1, -1
	firstGlobal := -1
	for i, l := range cc.lines {
		if l.kind == lineSection && l.section == "global" && !l.hasSub && firstGlobal < 0 {
			firstGlobal = i
		}
		if l.isNodeIPFamilies() {
			anchor, style = i, i
		}
	}
	if anchor < 0 && firstGlobal >= 0 {
		anchor = firstGlobal
		for i := firstGlobal + 1; i < len(cc.lines) && cc.lines[i].kind != lineSection; i++ {
			if cc.lines[i].kind == lineVariable {
				anchor, style = i, i
			}
		}
	}
	indent, sep, quote := "", "=", false // the installer writes NodeIPFamilies=ipv4
	if style >= 0 {
		indent, sep = cc.lines[style].indent, cc.lines[style].sep
		quote = cc.lines[style].isNodeIPFamilies() && cc.lines[style].quoted
		if sep == "" { // a variable without a value: keep its indent only
			sep = "="
		}
	}
	var added []string
	for _, f := range add {
		v := f
		if quote {
			v = `"` + f + `"`
		}
		added = append(added, indent+nodeIPFamiliesKey+sep+v)
	}

	var b strings.Builder
	var hunk string
	if anchor < 0 {
		// No [Global]: a new one at the top, apart from what follows.
		lines := append([]string{"[Global]"}, added...)
		for _, l := range lines {
			b.WriteString(l + eol)
		}
		if text != "" {
			b.WriteString(eol)
		}
		b.WriteString(text)
		added = lines
		hunk = fmt.Sprintf("@@ -0,0 +1,%d @@", len(lines))
	} else {
		a := cc.lines[anchor]
		cut := a.end + len(a.eol)
		b.WriteString(text[:cut])
		if a.eol == "" {
			// The anchor is the last line and has no newline: it gets one,
			// and the last added line goes without, as the file did.
			b.WriteString(eol + strings.Join(added, eol))
		} else {
			for _, l := range added {
				b.WriteString(l + a.eol)
			}
		}
		b.WriteString(text[cut:])
		hunk = fmt.Sprintf("@@ -%d,0 +%d,%d @@", anchor+1, anchor+2, len(added))
	}
	diff := []string{hunk}
	for _, l := range added {
		diff = append(diff, "+"+l)
	}
	return Edit{Text: b.String(), Added: added, Diff: diff, Target: target}, nil
}

// dominantEOL is the line ending the text uses most ("\n" when it has
// none): what added lines get where they cannot copy a neighbour's.
func (cc *cloudConfig) dominantEOL() string {
	crlf, lf := 0, 0
	for _, l := range cc.lines {
		switch l.eol {
		case "\r\n":
			crlf++
		case "\n":
			lf++
		}
	}
	if crlf > lf {
		return "\r\n"
	}
	return "\n"
}
