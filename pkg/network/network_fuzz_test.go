package network

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// The fuzzers below run their seed corpus (f.Add and testdata/fuzz/FuzzXxx)
// in every `go test`; `go test -fuzz '^FuzzXxx$'` explores from there.

// maxFuzzInput keeps one input cheap: the parsers see flags and ConfigMap
// values, never megabytes.
const maxFuzzInput = 4096

// FuzzParseRequest: whatever the flags say, an accepted request is IPv6,
// canonical, within the sizes the components accept, self-consistent, free
// of the special-purpose ranges, and survives a round trip through its own
// text; the reserved-range and node-mask checks are exact.
func FuzzParseRequest(f *testing.F) {
	f.Add("fd01::/48", 64, "fd02::/112")
	f.Add("fd10::/56", 120, "fd20::/120")
	f.Add("2001:db8::/32", 64, "fd02::/108")
	f.Add("10.128.0.0/14", 64, "fd02::/112")
	f.Add("::ffff:10.0.0.0/104", 120, "fd02::/112")
	f.Add("fd01::1/48", 64, "fd02::/112")
	f.Add("fd01::/48", 64, "fd01:0:0:1::/112")
	f.Add("fd98::/48", 64, "fd02::/112")
	f.Add("FD01:0::/48", 64, "fd02::0/112")
	f.Add("fe80::%eth0/64", 80, "fd02::/112")
	f.Add("::/1", 64, "8000::/112")
	f.Fuzz(func(t *testing.T, cluster string, hostPrefix int, service string) {
		if len(cluster)+len(service) > maxFuzzInput {
			return
		}
		r, err := ParseRequest(cluster, hostPrefix, service)
		r2, err2 := ParseRequest(cluster, hostPrefix, service)
		if r != r2 || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %v %v / %v %v", r, err, r2, err2)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, p := range []netip.Prefix{r.ClusterNetwork, r.ServiceNetwork} {
			a := p.Addr()
			if !p.IsValid() || !a.Is6() || a.Is4In6() || a.Zone() != "" || p.Masked() != p {
				t.Fatalf("accepted %v: not a canonical IPv6 range", p)
			}
			for _, s := range specialIPv6 {
				if p.Overlaps(s.prefix) {
					t.Fatalf("accepted %v, which overlaps the %s range %v", p, s.what, s.prefix)
				}
			}
		}
		cb, sb := r.ClusterNetwork.Bits(), r.ServiceNetwork.Bits()
		switch {
		case r.HostPrefix != hostPrefix:
			t.Fatalf("host prefix %d became %d", hostPrefix, r.HostPrefix)
		case hostPrefix < minHostPrefix || hostPrefix > maxHostPrefix || hostPrefix <= cb:
			t.Fatalf("accepted host prefix %d for a /%d", hostPrefix, cb)
		case sb < minServicePrefix || sb > maxServicePrefix:
			t.Fatalf("accepted service network /%d", sb)
		case r.ClusterNetwork.Overlaps(r.ServiceNetwork):
			t.Fatalf("accepted overlapping %v and %v", r.ClusterNetwork, r.ServiceNetwork)
		}
		// Round trip: the request's own text parses back to the same request.
		back, err := ParseRequest(r.ClusterNetwork.String(), r.HostPrefix, r.ServiceNetwork.String())
		if err != nil || back != r {
			t.Fatalf("round trip of %+v: %+v, %v", r, back, err)
		}
		if e := r.ClusterEntry(); e.CIDR != r.ClusterNetwork.String() || e.HostPrefix != int64(hostPrefix) {
			t.Fatalf("ClusterEntry %+v of %+v", e, r)
		}
		if err := r.CheckNodeMask(); (err != nil) != (hostPrefix-cb > maxNodeMaskBits) {
			t.Fatalf("CheckNodeMask(/%d, %d): %v", cb, hostPrefix, err)
		}
		// The reserved-range check is exact: it fails iff a range overlaps.
		reserved, err := OVNReserved(nil)
		if err != nil {
			t.Fatal(err)
		}
		reserved = append(reserved, ReservedFromCIDRs("existing network", []string{"10.128.0.0/14", "172.30.0.0/16", "fd00::/16"})...)
		reserved = append(reserved, ReservedFromAddresses("node", []string{"fd55::10", "10.0.0.1"})...)
		checkReservedExact(t, r, reserved)
	})
}

// FuzzCheckReserved: ranges read from the cluster (any text the API returns,
// comma-separated here) turn into masked Reserved entries, node addresses
// into IPv6 /128s, and CheckReserved refuses a request iff it overlaps one.
func FuzzCheckReserved(f *testing.F) {
	f.Add("fd01::/48", "fd02::/112", "10.128.0.0/14,fd01:0:0:5::/64", "fd55::10,10.0.0.1")
	f.Add("fd01::/48", "fd02::/112", "fd02::1/128", "")
	f.Add("fd01::/48", "fd02::/112", "fd01::1/48,garbage,::/0", "fd01::5,::ffff:10.0.0.1,fe80::1%eth0")
	f.Add("fd10::/56", "fd20::/120", "", "fd20::")
	f.Fuzz(func(t *testing.T, cluster, service, cidrs, addrs string) {
		if len(cluster)+len(service)+len(cidrs)+len(addrs) > maxFuzzInput {
			return
		}
		r, err := ParseRequest(cluster, 64, service)
		if err != nil {
			r, _ = ParseRequest("fd01::/48", 64, "fd02::/112")
		}
		cl, al := strings.Split(cidrs, ","), strings.Split(addrs, ",")
		fromCIDRs := ReservedFromCIDRs("existing", cl)
		if len(fromCIDRs) > len(cl) {
			t.Fatalf("%d reserved ranges from %d CIDRs", len(fromCIDRs), len(cl))
		}
		for _, res := range fromCIDRs {
			if !res.Prefix.IsValid() || res.Prefix.Masked() != res.Prefix {
				t.Fatalf("reserved %v is not a masked range", res.Prefix)
			}
		}
		fromAddrs := ReservedFromAddresses("node", al)
		for _, res := range fromAddrs {
			if res.Prefix.Bits() != 128 || !res.Prefix.Addr().Is6() || res.Prefix.Addr().Is4In6() {
				t.Fatalf("reserved node address %v is not an IPv6 /128", res.Prefix)
			}
		}
		checkReservedExact(t, r, append(fromCIDRs, fromAddrs...))
	})
}

func checkReservedExact(t *testing.T, r Request, reserved []Reserved) {
	t.Helper()
	overlap := slices.ContainsFunc(reserved, func(res Reserved) bool {
		return res.Prefix.Overlaps(r.ClusterNetwork) || res.Prefix.Overlaps(r.ServiceNetwork)
	})
	if err := r.CheckReserved(reserved); (err != nil) != overlap {
		t.Fatalf("CheckReserved(%v, %v) = %v, overlap %t", r.ClusterNetwork, r.ServiceNetwork, err, overlap)
	}
}

// FuzzOVNReserved: the operator config's custom OVN-Kubernetes subnets
// replace the defaults one by one; a value that is not a CIDR is an error,
// never a silently missing reservation.
func FuzzOVNReserved(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("fd99::/64", "fd96::/64", "fd70::/112", "")
	f.Add("", "", "", "fd55::/64")
	f.Add("fd99::1/64", "", "", "")
	f.Add("not-a-cidr", "", "", "")
	f.Add("", "fd96::/64", "", "100.64.0.0/16")
	f.Fuzz(func(t *testing.T, join, transit, masq, legacyJoin string) {
		values := map[string]string{"internalJoinSubnet": join, "internalTransitSwitchSubnet": transit,
			"internalMasqueradeSubnet": masq, "v6InternalSubnet": legacyJoin}
		get := func(field ...string) string { return values[field[len(field)-1]] }
		got, err := OVNReserved(get)
		want := []string{first(join, legacyJoin, "fd98::/64"), first(transit, "fd97::/64"), first(masq, "fd69::/112")}
		bad := slices.ContainsFunc(want, func(s string) bool { _, e := netip.ParsePrefix(s); return e != nil })
		if (err != nil) != bad {
			t.Fatalf("OVNReserved(%q): %v, want error %t", want, err, bad)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d reserved ranges, want %d", len(got), len(want))
		}
		for i, res := range got {
			p := netip.MustParsePrefix(want[i]).Masked()
			custom := want[i] != ovnInternal[i].def || (i == 0 && (join != "" || legacyJoin != ""))
			if res.Prefix != p || strings.HasSuffix(res.What, "(operator config)") != custom {
				t.Fatalf("entry %d: %+v, want %v (custom %t)", i, res, p, custom)
			}
		}
	})
}

// FuzzPodFlags: the static pod's command line is read like pflag reads it:
// --name=value and --name value, the last occurrence wins, and every flag
// found was on the command line.
func FuzzPodFlags(f *testing.F) {
	f.Add("kube-apiserver --advertise-address=10.0.0.1 --service-cluster-ip-range=10.96.0.0/12 --allow-privileged=true")
	f.Add("kube-controller-manager --cluster-cidr 10.244.0.0/16 --node-cidr-mask-size 24 --leader-elect")
	f.Add("kube-controller-manager --cluster-cidr=10.244.0.0/16,fd00::/48 --node-cidr-mask-size-ipv4=24 --node-cidr-mask-size-ipv6=64")
	f.Add("kube-apiserver --service-cluster-ip-range=10.96.0.0/12 --service-cluster-ip-range=10.97.0.0/16")
	f.Add("x --= --==a -- --a=b=c --novalue")
	f.Fuzz(func(t *testing.T, cmdline string) {
		if len(cmdline) > maxFuzzInput {
			return
		}
		args := strings.Split(cmdline, " ")
		cut := len(args) / 2
		pod := corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Command: args[:cut], Args: args[cut:]}}}}
		flags := podFlags(pod)
		for name := range flags {
			if !slices.ContainsFunc(args, func(a string) bool { return a == "--"+name || strings.HasPrefix(a, "--"+name+"=") }) {
				t.Fatalf("flag %q is not on the command line %q", name, args)
			}
		}
		// The last --name=value of each name is its value.
		for i := len(args) - 1; i >= 0; i-- {
			name, value, ok := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
			if !ok || !strings.HasPrefix(args[i], "--") {
				continue
			}
			if slices.ContainsFunc(args[i+1:], func(a string) bool { return a == "--"+name || strings.HasPrefix(a, "--"+name+"=") }) {
				continue
			}
			if flags[name] != value {
				t.Fatalf("--%s=%s read as %q from %q", name, value, flags[name], args)
			}
		}
	})
}

// FuzzReadClusterFlags: the control plane's flags and ConfigMaps, whatever
// they hold, are read without a panic; the plan made from them is
// deterministic, adds the IPv6 range exactly where it is missing, keeps
// the existing ranges first, and changes nothing that is already dual-stack.
func FuzzReadClusterFlags(f *testing.F) {
	f.Add("kube-apiserver --service-cluster-ip-range=10.96.0.0/12",
		"kube-controller-manager --cluster-cidr=10.244.0.0/16 --service-cluster-ip-range=10.96.0.0/12 --node-cidr-mask-size=24",
		"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nmode: iptables\n",
		"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n",
		"10.0.0.2,fd00:10::2")
	f.Add("kube-apiserver --service-cluster-ip-range=10.96.0.0/16,fd02::/112",
		"kube-controller-manager --cluster-cidr=10.244.0.0/16,fd01::/48 --node-cidr-mask-size-ipv4=24 --node-cidr-mask-size-ipv6=64",
		"clusterCIDR: 10.244.0.0/16,fd01::/48\n",
		"networking:\n  podSubnet: 10.244.0.0/16,fd01::/48\n  serviceSubnet: 10.96.0.0/16,fd02::/112\n",
		"10.0.0.2")
	f.Add("kube-apiserver --service-cluster-ip-range 10.96.0.0/12", "", "", "", "")
	f.Add("", "kube-controller-manager --cluster-cidr", "clusterCIDR: [1, 2]\n", "networking: 7\n", "")
	f.Add("kube-apiserver", "kube-controller-manager", "{", ":\t-", "fd00::1")
	f.Add("kube-apiserver --service-cluster-ip-range=fd02::/112", "kube-controller-manager --cluster-cidr=fd01::/48", "clusterCIDR: fd01::/48", "", "fd00::2")
	f.Fuzz(func(t *testing.T, apiserver, controller, proxyConf, kubeadmConf, nodeIPs string) {
		if len(apiserver)+len(controller)+len(proxyConf)+len(kubeadmConf)+len(nodeIPs) > maxFuzzInput {
			return
		}
		staticPod := func(component, cmdline string) *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: component + "-cp1", Namespace: "kube-system", Labels: map[string]string{"component": component}},
				Spec: corev1.PodSpec{NodeName: "cp1", Containers: []corev1.Container{{Name: component, Command: strings.Split(cmdline, " ")}}}}
		}
		kc := fake.NewClientset(
			staticPod("kube-apiserver", apiserver),
			staticPod("kube-controller-manager", controller),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"}, Data: map[string]string{"config.conf": proxyConf}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"}, Data: map[string]string{"ClusterConfiguration": kubeadmConf}},
		)
		fl, err := ReadClusterFlags(context.Background(), kc)
		if err != nil {
			return // unparsable ConfigMap: reported, nothing planned
		}
		apiFlags := podFlags(*staticPod("kube-apiserver", apiserver))
		if fl.APIServerServiceRange != apiFlags["service-cluster-ip-range"] {
			t.Fatalf("apiserver service range %q, command line says %q", fl.APIServerServiceRange, apiFlags["service-cluster-ip-range"])
		}
		res := fl.Reserved()
		for range 16 { // map order would show within a few calls
			if again := fl.Reserved(); !reflect.DeepEqual(res, again) {
				t.Fatalf("Reserved() is not deterministic: %v, then %v", res, again)
			}
		}
		r, _ := ParseRequest("fd01::/48", 64, "fd02::/112")
		var nodes []corev1.Node
		for i, ip := range strings.Split(nodeIPs, ",") {
			nodes = append(nodes, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n" + itoa(i)},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}})
		}
		for _, kind := range []platform.Kind{platform.Kubeadm, platform.KindKind} {
			p := KubeadmPlan(kind, fl, r, nodes)
			if !reflect.DeepEqual(p, KubeadmPlan(kind, fl, r, nodes)) {
				t.Fatal("KubeadmPlan is not deterministic")
			}
			for _, c := range p.Changes {
				if c.Desired == c.Current {
					t.Fatalf("no-op change listed: %+v", c)
				}
				if strings.HasPrefix(c.Desired, ",") || strings.HasSuffix(c.Desired, ",") {
					t.Fatalf("%s: desired %q has an empty entry", c.Setting, c.Desired)
				}
				if !rangeSetting(c.Setting) {
					continue
				}
				if ipv6Only(c.Current) {
					t.Fatalf("change to the IPv6-only %s %q", c.Setting, c.Current)
				}
				if hasBoth(c.Current) {
					t.Fatalf("change to the already dual-stack %s %q", c.Setting, c.Current)
				}
				cur, des := splitList(c.Current), splitList(c.Desired)
				if !HasFamily(des, "IPv6") {
					t.Fatalf("%s desired %q has no IPv6 range", c.Setting, c.Desired)
				}
				if len(cur) > 0 && !slices.Equal(des[:min(len(cur), len(des))], cur) {
					t.Fatalf("%s: desired %q does not keep the current %q first", c.Setting, c.Desired, c.Current)
				}
				if appendRange(c.Desired, "fd77::/112") != c.Desired {
					t.Fatalf("%s: appending to the desired %q is not a no-op", c.Setting, c.Desired)
				}
			}
		}
	})
}

func rangeSetting(s string) bool {
	switch s {
	case "--service-cluster-ip-range", "--cluster-cidr", "clusterCIDR", "networking.podSubnet", "networking.serviceSubnet":
		return true
	}
	return false
}
