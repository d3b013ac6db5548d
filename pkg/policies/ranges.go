package policies

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// RangeInput is what the cluster says of its ranges, in both families
// where it has them.
type RangeInput struct {
	PodNetwork     []string // OpenShift Network status.clusterNetwork cidrs
	ServiceNetwork []string // the service ranges
	VPCIPv4        []string // the VPC's IPv4 CIDRs (the nodes' network)
	VPCIPv6        string   // the VPC's IPv6 block, "" when none
	// VPCUnknown says why the VPC was not read ("" when it was or the
	// cluster is not on AWS).
	VPCUnknown string
	// Command spells one of this tool's commands, for the fixes.
	Command func(string) string
}

// Make pairs each range with its IPv6 counterpart.
func (in RangeInput) Make() Ranges {
	cmd := in.Command
	if cmd == nil {
		cmd = func(s string) string { return "kubectl dualstack " + s }
	}
	var rs Ranges
	if r, ok := PairOf("pod network", in.PodNetwork, "`"+cmd("network")+"` adds one"); ok {
		rs = append(rs, r)
	}
	if r, ok := PairOf("service network", in.ServiceNetwork, "`"+cmd("network")+"` adds one"); ok {
		rs = append(rs, r)
	}
	for _, v4 := range in.VPCIPv4 {
		cidrs := []string{v4}
		if in.VPCIPv6 != "" {
			cidrs = append(cidrs, in.VPCIPv6)
		}
		if r, ok := PairOf("VPC", cidrs, "the VPC has no IPv6 block: `"+cmd("aws apply")+"` adds one"); ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// ReadRanges reads the pod and service ranges from the cluster: the
// OpenShift Network's status, else the ServiceCIDR objects. A range the
// cluster does not tell is left out (blocks naming it are reported as
// other CIDRs).
func ReadRanges(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, openShift bool, in RangeInput) (RangeInput, error) {
	if openShift {
		nw, err := dc.Resource(platform.NetworksGVR).Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return in, fmt.Errorf("reading networks.config.openshift.io/cluster (the cluster's pod and service ranges): %w", err)
		}
		entries, _, _ := unstructured.NestedSlice(nw.Object, "status", "clusterNetwork")
		for _, e := range entries {
			if m, ok := e.(map[string]any); ok {
				if c, _ := m["cidr"].(string); c != "" {
					in.PodNetwork = append(in.PodNetwork, c)
				}
			}
		}
		in.ServiceNetwork, _, _ = unstructured.NestedStringSlice(nw.Object, "status", "serviceNetwork")
		return in, nil
	}
	list, err := kc.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{Limit: 500})
	if err == nil {
		for _, sc := range list.Items {
			in.ServiceNetwork = append(in.ServiceNetwork, sc.Spec.CIDRs...)
		}
	}
	return in, nil
}
