package ipfamily

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestOf(t *testing.T) {
	for in, want := range map[string]Family{
		"10.0.0.1": IPv4, "10.0.0.0/16": IPv4, "::ffff:10.0.0.1": IPv4, "[fd00::1]": IPv6,
		"fd02::/112": IPv6, "2600:1f18::1": IPv6, "": None, "nope": None, "10.0.0.0/33": None,
	} {
		if got := Of(in); got != want {
			t.Errorf("Of(%q) = %q, want %q", in, got, want)
		}
	}
	if v4, v6 := Cover([]string{"10.0.0.0/16", "x", "fd02::/112"}); !v4 || !v6 {
		t.Errorf("Cover: %v %v", v4, v6)
	}
	n := &corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeExternalIP, Address: "2600::9"}, {Type: corev1.NodeInternalIP, Address: "2600::1"}}}}
	if got := NodeInternalIPs(n, IPv6); len(got) != 1 || got[0] != "2600::1" {
		t.Errorf("NodeInternalIPs: %v", got)
	}
}
