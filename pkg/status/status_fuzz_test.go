package status

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fuzzers below run their seed corpus (f.Add and testdata/fuzz/FuzzXxx)
// in every `go test`; `go test -fuzz '^FuzzXxx$'` explores from there.

// FuzzFamilies: the families of a list are those of its entries, whatever
// mix of addresses, CIDRs and garbage it holds; an IPv4-mapped IPv6
// address counts as IPv4.
func FuzzFamilies(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.1,fd00::1", "10.96.0.0/12,fd02::/112", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104",
		"fe80::1%eth0", "garbage,,", "", "1.2.3.4/33", "fd00::/129"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		addrs := strings.Split(list, ",")
		v4, v6 := Families(addrs)
		var w4, w6 bool
		for _, a := range addrs {
			e4, e6 := Families([]string{a})
			if e4 && e6 {
				t.Fatalf("%q is both IPv4 and IPv6", a)
			}
			w4, w6 = w4 || e4, w6 || e6
			ip, err := netip.ParseAddr(a)
			if p, perr := netip.ParsePrefix(a); perr == nil {
				ip, err = p.Addr(), nil
			}
			if (err == nil) != (e4 || e6) {
				t.Fatalf("%q: parses %t, families %t %t", a, err == nil, e4, e6)
			}
			if err == nil && e4 != ip.Unmap().Is4() {
				t.Fatalf("%q counted as IPv4 %t", a, e4)
			}
		}
		if v4 != w4 || v6 != w6 {
			t.Fatalf("Families(%q) = %t %t, entries say %t %t", addrs, v4, v6, w4, w6)
		}
	})
}

// FuzzOVNSubnets: the node-subnets annotation is read in both of its forms
// (a list per network and, from older OVN-Kubernetes, one string) and
// whatever else it holds never panics.
func FuzzOVNSubnets(f *testing.F) {
	for _, s := range []string{
		`{"default":["10.128.2.0/23","fd01:0:0:3::/64"]}`,
		`{"default":"10.128.2.0/23"}`,
		`{"default":["10.128.2.0/23"],"l3-udn":["10.20.0.0/24"]}`,
		`{"default":"10.128.2.0/23","l3-udn":["10.20.0.0/24"]}`,
		`{"default":["10.128.2.0/23","fd01:0:0:3::/64"],"old":"10.20.0.0/24"}`,
		`{"default":null}`,
		`{"default":""}`,
		`{"other":"x"}`,
		`[1,2]`,
		`{`,
		``,
	} {
		f.Add(s, "10.128.2.0/23", "fd01:0:0:3::/64")
	}
	f.Fuzz(func(t *testing.T, annotation, a, b string) {
		got := ovnSubnets(annotation)
		var many map[string][]string
		if json.Unmarshal([]byte(annotation), &many) == nil && !slices.Equal(got, many["default"]) {
			t.Fatalf("ovnSubnets(%q) = %q, want %q", annotation, got, many["default"])
		}
		// Whatever the other networks hold, the default network's entry
		// alone decides (either form).
		var networks map[string]json.RawMessage
		if json.Unmarshal([]byte(annotation), &networks) == nil {
			var def struct {
				Default json.RawMessage `json:"default"`
			}
			_ = json.Unmarshal([]byte(annotation), &def)
			alone, _ := json.Marshal(map[string]json.RawMessage{"default": def.Default})
			if def.Default != nil && !slices.Equal(got, ovnSubnets(string(alone))) {
				t.Fatalf("ovnSubnets(%q) = %q, but its default network alone gives %q", annotation, got, ovnSubnets(string(alone)))
			}
		}
		// Round trips of both forms (annotations are UTF-8: JSON would
		// replace anything else).
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		list, _ := json.Marshal(map[string][]string{"default": {a, b}, "other": {b}})
		if got := ovnSubnets(string(list)); !slices.Equal(got, []string{a, b}) {
			t.Fatalf("ovnSubnets(%s) = %q", list, got)
		}
		one, _ := json.Marshal(map[string]any{"default": a, "other": []string{b}})
		want := []string{a}
		if a == "" {
			want = nil
		}
		if got := ovnSubnets(string(one)); !slices.Equal(got, want) {
			t.Fatalf("ovnSubnets(%s) = %q, want %q", one, got, want)
		}
	})
}
