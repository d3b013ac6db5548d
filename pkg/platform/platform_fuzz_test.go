package platform

import (
	"regexp"
	"strings"
	"testing"
)

// The fuzzers below run their seed corpus (f.Add and testdata/fuzz/FuzzXxx)
// in every `go test`; `go test -fuzz '^FuzzXxx$'` explores from there.

var instanceIDRE = regexp.MustCompile(`^i-[0-9a-f]+$`)

// FuzzParseAWSProviderID: a providerID is accepted iff it is
// aws:///<zone>/<instance-id>, and the parts rebuild it exactly; the region
// of the zone is a prefix of it and is its own region.
func FuzzParseAWSProviderID(f *testing.F) {
	for _, s := range []string{
		"aws:///us-east-1a/i-0123456789abcdef0",
		"aws:///us-west-2-lax-1a/i-0abc",
		"aws:///us-gov-west-1b/i-1",
		"aws:///cn-north-1a/i-1",
		"aws:///us-isob-east-1a/i-1",
		"aws:////i-0abc",
		"aws:///us-east-1a/i-0ABC",
		"aws:///us-east-1a/i-0abc\n",
		"aws://us-east-1a/i-0abc",
		"aws:///a/b/i-0abc",
		"gce://project/zone/name",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		zone, instance, ok := ParseAWSProviderID(id)
		if !ok {
			if zone != "" || instance != "" {
				t.Fatalf("rejected %q but returned %q %q", id, zone, instance)
			}
		} else {
			switch {
			case "aws:///"+zone+"/"+instance != id:
				t.Fatalf("%q split into %q and %q", id, zone, instance)
			case strings.Contains(zone, "/"):
				t.Fatalf("zone %q of %q holds a slash", zone, id)
			case !instanceIDRE.MatchString(instance):
				t.Fatalf("instance %q of %q is not an instance ID", instance, id)
			}
		}
		for _, z := range []string{zone, id} {
			r := RegionOfZone(z)
			if r == "" {
				continue
			}
			if !strings.HasPrefix(z, r) {
				t.Fatalf("region %q of zone %q is not its prefix", r, z)
			}
			if again := RegionOfZone(r); again != r {
				t.Fatalf("region of the region %q is %q", r, again)
			}
		}
	})
}
