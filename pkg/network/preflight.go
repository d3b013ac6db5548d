package network

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// awsRefusalSince is the first OpenShift release whose network operator
// refuses converting an installed cluster on AWS to dual-stack.
var awsRefusalSince = version.MajorMinor(4, 11)

// Problem is a preflight finding that stops the change.
type Problem struct {
	Check   string `json:"check"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Forceable problems are the operator's policy, not a broken
	// prerequisite: --force patches anyway.
	Forceable bool `json:"forceable,omitempty"`
}

// ConversionAllowed says whether the network operator of this platform and
// release converts an installed cluster to dual-stack, and why not.
// The operator allows it on BareMetal, None and VSphere; on AWS it did until
// 4.11; elsewhere it never has.
func ConversionAllowed(info platform.Info) (bool, string) {
	pt := info.InfrastructurePlatform
	switch pt {
	case "BareMetal", "None", "VSphere":
		return true, ""
	case "AWS":
		v, err := version.ParseGeneric(info.OpenShiftVersion)
		if err == nil && v.LessThan(awsRefusalSince) {
			return true, ""
		}
		return false, fmt.Sprintf("OpenShift %s on AWS: the cluster network operator refuses converting an installed cluster to dual-stack (since 4.%d it goes Degraded with reason InvalidClusterConfig and the cluster stays IPv4-only)",
			orUnknown(info.OpenShiftVersion), awsRefusalSince.Minor())
	default:
		return false, fmt.Sprintf("platform %s: the cluster network operator converts an installed cluster to dual-stack only on BareMetal, None and VSphere", orUnknown(pt))
	}
}

// Preflight checks what must hold before the Network config is patched.
// display is the command as typed ("kubectl dualstack"), for fixes.
func Preflight(info platform.Info, nc *NetworkConfig, op OperatorStatus, nodes []corev1.Node, display string) []Problem {
	var out []Problem
	if nc.NetworkType != "OVNKubernetes" {
		out = append(out, Problem{Check: "network-type",
			Message: fmt.Sprintf("networkType is %s: only OVN-Kubernetes does dual-stack", orUnknown(nc.NetworkType)),
			Fix:     "migrate the cluster network to OVNKubernetes first"})
	}
	if missing := nodesWithoutIPv6(nodes); len(missing) > 0 {
		p := Problem{Check: "node-internal-ips",
			Message: fmt.Sprintf("%d of %d nodes have no IPv6 InternalIP (%s)", len(missing), len(nodes), names(missing))}
		if info.OnAWS() {
			p.Fix = fmt.Sprintf("give the VPC, subnets and instances IPv6 first: %s aws apply; the nodes report an IPv6 InternalIP once their kubelets restart", display)
		} else {
			p.Fix = "give every node an IPv6 address on its primary interface, so the kubelet reports an IPv6 InternalIP"
		}
		out = append(out, p)
	}
	if ok, why := ConversionAllowed(info); !ok {
		fix := "convert only on a platform whose operator allows it, or --force to patch anyway (expect Degraded; undo with --revert)"
		if info.InfrastructurePlatform == "AWS" {
			fix = "install dual-stack instead: install-config platform.aws.ipFamily: DualStackIPv4Primary (status.platformStatus.aws.ipFamily on the Infrastructure), on releases that have it; " +
				"--force patches anyway, expect Degraded and undo with " + display + " network --revert"
		}
		out = append(out, Problem{Check: "platform", Message: why, Fix: fix, Forceable: true})
	}
	if op.Degraded == "True" {
		out = append(out, Problem{Check: "network-operator",
			Message: fmt.Sprintf("the network ClusterOperator is already Degraded (%s: %s)", op.Reason, op.Message),
			Fix:     "fix what the operator reports first (oc get clusteroperator network -o yaml)", Forceable: true})
	}
	return out
}

func nodesWithoutIPv6(nodes []corev1.Node) []string {
	var out []string
	for _, n := range nodes {
		if len(ipfamily.NodeInternalIPs(&n, ipfamily.IPv6)) == 0 {
			out = append(out, n.Name)
		}
	}
	return out
}

// NodeIPv6Addresses are the nodes' IPv6 InternalIPs.
func NodeIPv6Addresses(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		out = append(out, ipfamily.NodeInternalIPs(&nodes[i], ipfamily.IPv6)...)
	}
	return out
}

const maxNamed = 3

func names(list []string) string {
	if len(list) <= maxNamed {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:maxNamed], ", ") + " and " + itoa(len(list)-maxNamed) + " more"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
