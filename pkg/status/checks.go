package status

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// Dual-stack is GA (and on by default) from Kubernetes 1.23.
var minKubernetes = version.MajorMinor(1, 23)

// The OpenShift cluster network operator refuses converting an installed
// cluster on AWS to dual-stack from 4.11 on.
var openShiftAWSRefusal = version.MajorMinor(4, 11)

// maxNamed caps how many node names a message lists.
const maxNamed = 3

// Evaluate judges the facts layer by layer (cluster, underlay, overlay,
// mesh), in a stable order. command is how the user runs the plugin
// ("oc dualstack"), for the fixes that name one of its commands.
func Evaluate(f *Facts, command string) report.Report {
	var r report.Report
	r.Add(kubernetesVersion(f.Platform.KubernetesVersion))
	r.Add(platformCheck(f.Platform))
	for _, c := range underlayChecks(f.Underlay, command) {
		r.Add(c)
	}
	metadata, netpol := policyChecks(f, command)
	addIf(&r, metadata)
	r.Add(nodeInternalIPs(f, command))
	r.Add(podCIDRs(f.Platform.Kind, f.Nodes, command))
	r.Add(serviceCIDRCheck(f.Platform.Kind, f.ServiceCIDRs, command))
	r.Add(servicesCheck(f, command))
	r.Add(podsCheck(f, command))
	addIf(&r, netpol)
	if f.OpenShift != nil {
		r.Add(openShiftNetworkCheck(f.OpenShift, command))
		r.Add(openShiftConversion(f.Platform, f.OpenShift))
	}
	for _, c := range meshChecks(f, command) {
		r.Add(c)
	}
	addIf(&r, routerCheck(f, command))
	return r
}

func addIf(r *report.Report, c *report.Check) {
	if c != nil {
		r.Add(*c)
	}
}

func kubernetesVersion(gitVersion string) report.Check {
	c := report.Check{Layer: report.LayerCluster, Name: "kubernetes-version"}
	v, err := version.ParseGeneric(gitVersion)
	switch {
	case err != nil || v.Major() == 0:
		c.Status = report.Warn
		c.Message = fmt.Sprintf("cannot tell the Kubernetes release from the server version %q (a development build?)", gitVersion)
		c.Remediation = "dual-stack needs Kubernetes 1.23 or newer: check the cluster's release by other means"
	case v.LessThan(minKubernetes):
		c.Status = report.Fail
		c.Message = fmt.Sprintf("Kubernetes %s: IPv4/IPv6 dual-stack is GA only from 1.23", gitVersion)
		c.Remediation = "upgrade the cluster to Kubernetes 1.23 or newer (OpenShift 4.10 or newer) first"
	default:
		c.Status, c.Message = report.Pass, fmt.Sprintf("Kubernetes %s (dual-stack GA since 1.23)", gitVersion)
	}
	return c
}

func platformCheck(p platform.Info) report.Check {
	c := report.Check{Layer: report.LayerCluster, Name: "platform", Status: report.Pass}
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.OpenShiftVersion != "" {
		b.WriteString(" " + p.OpenShiftVersion)
	}
	if p.InfrastructurePlatform != "" {
		b.WriteString(" on " + p.InfrastructurePlatform)
	} else if p.OnAWS() {
		b.WriteString(" on AWS")
	}
	var details []string
	if p.AWSRegion != "" {
		details = append(details, "region "+p.AWSRegion)
	}
	if p.InfraID != "" {
		details = append(details, "infraID "+p.InfraID)
	}
	if len(p.ServiceEndpoints) > 0 {
		details = append(details, fmt.Sprintf("%d custom AWS endpoints", len(p.ServiceEndpoints)))
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	c.Message = b.String()
	if !p.OnAWS() {
		c.Status = report.Warn
		c.Message += "; not on AWS as far as the cluster tells, so the AWS underlay cannot be managed"
		c.Remediation = "for a cluster on EC2 without a cloud provider, pass --region and --vpc-id to the aws commands"
	}
	return c
}

func nodeInternalIPs(f *Facts, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "node-internal-ips"}
	if len(f.Nodes) == 0 {
		c.Status, c.Message = report.Warn, "the cluster has no nodes"
		return c
	}
	byFamily := map[string][]string{}
	for _, n := range f.Nodes {
		if v4, v6 := Families(n.InternalIPs); !v4 || !v6 {
			w := familyWord(v4, v6)
			byFamily[w] = append(byFamily[w], n.Name)
		}
	}
	if len(byFamily) == 0 {
		c.Status = report.Pass
		c.Message = fmt.Sprintf("all %d nodes have IPv4 and IPv6 InternalIPs", len(f.Nodes))
		return c
	}
	c.Status = report.Fail
	c.Message = "InternalIPs: " + describeGroups(byFamily, len(f.Nodes))
	switch {
	case f.Platform.Kind == platform.KindKind:
		c.Remediation = "kind cannot add a family in place: re-create the cluster with networking.ipFamily: dual"
	case f.Platform.OnAWS():
		c.Remediation = fmt.Sprintf("give the instances IPv6 (%[1]s aws apply), then have the cloud provider report it: %[1]s nodes (NodeIPFamilies ipv4 and ipv6 in its cloud config; it names any node whose kubelet --node-ip needs a change on the host)", command)
	default:
		c.Remediation = "give each node an IPv6 address and start the kubelet with --node-ip=<IPv4>,<IPv6>"
	}
	return c
}

func podCIDRs(kind platform.Kind, nodes []NodeFacts, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "pod-cidrs"}
	var withCIDRs int
	missing := map[string][]string{}
	for _, n := range nodes {
		if len(n.PodCIDRs) == 0 {
			continue
		}
		withCIDRs++
		if v4, v6 := Families(n.PodCIDRs); !v4 || !v6 {
			w := familyWord(v4, v6)
			missing[w] = append(missing[w], n.Name)
		}
	}
	switch {
	case withCIDRs == 0:
		c.Status = report.Skip
		c.Message = "no node records pod CIDRs (spec.podCIDRs or OVN-Kubernetes node subnets): the network plugin allocates pod addresses itself"
	case len(missing) == 0:
		c.Status = report.Pass
		c.Message = fmt.Sprintf("%d nodes have IPv4 and IPv6 pod CIDRs", withCIDRs)
	default:
		c.Status = report.Fail
		c.Message = "pod CIDRs: " + describeGroups(missing, withCIDRs)
		switch kind {
		case platform.OpenShift:
			c.Remediation = command + " network (appends an IPv6 entry to spec.clusterNetwork of networks.config.openshift.io/cluster; OVN-Kubernetes then gives each node an IPv6 subnet)"
		case platform.KindKind:
			c.Remediation = "kind cannot add a family in place: re-create the cluster with networking.ipFamily: dual"
		default:
			c.Remediation = command + " network (on kubeadm it updates kubeadm-config and kube-proxy and prints the host-side flags: kube-controller-manager --cluster-cidr=<v4>,<v6> and --node-cidr-mask-size-ipv6; nodes get IPv6 pod CIDRs once it is in place)"
		}
	}
	return c
}

func serviceCIDRCheck(kind platform.Kind, s ServiceCIDRFacts, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "service-cidrs"}
	if s.Err != nil {
		c.Status = report.Warn
		c.Message = fmt.Sprintf("cannot tell the service IP families: %v", s.Err)
		c.Remediation = "needs list on servicecidrs.networking.k8s.io, or create (dry-run) on services in the default namespace"
		return c
	}
	v4, v6 := Families(s.CIDRs)
	c.Message = fmt.Sprintf("%s: %s (%s)", familyWord(v4, v6), strings.Join(s.CIDRs, ", "), s.Source)
	if v4 && v6 {
		c.Status = report.Pass
		return c
	}
	c.Status = report.Fail
	switch kind {
	case platform.OpenShift:
		c.Remediation = command + " network (appends an IPv6 range, fd02::/112 by default, to spec.serviceNetwork of networks.config.openshift.io/cluster)"
	case platform.KindKind:
		c.Remediation = "kind cannot add a family in place: re-create the cluster with networking.ipFamily: dual"
	default:
		c.Remediation = command + " network (on kubeadm it prints the host-side flags: kube-apiserver and kube-controller-manager --service-cluster-ip-range=<v4>,<v6>)"
	}
	return c
}

// servicesCheck counts the Services that stay single-stack until they are
// changed: Kubernetes never adds a family to an existing Service.
func servicesCheck(f *Facts, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "services"}
	s := f.Services
	if s.Err != nil {
		c.Status, c.Message = report.Warn, fmt.Sprintf("cannot count single-stack Services: %v", s.Err)
		c.Remediation = "needs list on services in all namespaces"
		return c
	}
	if s.SingleStack == 0 {
		c.Status = report.Pass
		c.Message = fmt.Sprintf("no single-stack Service with a cluster IP (%d with a cluster IP)", s.WithClusterIP)
		return c
	}
	c.Status = report.Warn
	c.Message = fmt.Sprintf("%d of %d Services with a cluster IP are single-stack (%s); Kubernetes never adds the second family to an existing Service",
		s.SingleStack, s.WithClusterIP, examples(s.Examples, s.SingleStack))
	c.Remediation = command + " services"
	if _, v6 := Families(f.ServiceCIDRs.CIDRs); !v6 {
		c.Remediation += ", once the service ranges have IPv6 (see service-cidrs)"
	}
	return c
}

// podsCheck counts the pods that have no IPv6 pod IP: a pod keeps the
// addresses it started with.
func podsCheck(f *Facts, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "pods"}
	p := f.Pods
	if p.Err != nil {
		c.Status, c.Message = report.Warn, fmt.Sprintf("cannot count the pods without IPv6: %v", p.Err)
		c.Remediation = "needs list on pods in all namespaces"
		return c
	}
	if p.IPv4Only == 0 {
		c.Status, c.Message = report.Pass, "every running pod on the pod network has an IPv6 pod IP"
		return c
	}
	type nsCount struct {
		ns string
		n  int
	}
	var by []nsCount
	for ns, n := range p.Namespaces {
		by = append(by, nsCount{ns, n})
	}
	sort.Slice(by, func(i, j int) bool { return by[i].n > by[j].n || by[i].n == by[j].n && by[i].ns < by[j].ns })
	var names []string
	for i, b := range by {
		if i == 3 {
			names = append(names, fmt.Sprintf("%d more namespaces", len(by)-3))
			break
		}
		names = append(names, fmt.Sprintf("%s: %d", b.ns, b.n))
	}
	c.Status = report.Warn
	c.Message = fmt.Sprintf("%d running pods have no IPv6 pod IP (%s); a pod keeps the addresses it started with", p.IPv4Only, strings.Join(names, ", "))
	if p.Uncontrolled > 0 {
		c.Message += fmt.Sprintf("; %d of them have no controller", p.Uncontrolled)
	}
	c.Remediation = command + " workloads (re-creates them through evictions; PodDisruptionBudgets hold)"
	if !allNodesHavePodIPv6(f.Nodes) {
		c.Remediation += ", once the pod network has IPv6 (see pod-cidrs)"
	}
	return c
}

func allNodesHavePodIPv6(nodes []NodeFacts) bool {
	for _, n := range nodes {
		if _, v6 := Families(n.PodCIDRs); !v6 {
			return false
		}
	}
	return len(nodes) > 0
}

func openShiftNetworkCheck(on *OpenShiftNetwork, command string) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "openshift-network"}
	if on.Err != nil {
		c.Status, c.Message = report.Warn, on.Err.Error()
		c.Remediation = "needs get on networks.config.openshift.io"
		return c
	}
	_, specCluster6 := Families(on.SpecClusterNetwork)
	_, specService6 := Families(on.SpecServiceNetwork)
	_, statusCluster6 := Families(on.StatusClusterNetwork)
	_, statusService6 := Families(on.StatusServiceNetwork)
	summary := fmt.Sprintf("%s; spec clusterNetwork [%s] serviceNetwork [%s]; status clusterNetwork [%s] serviceNetwork [%s]",
		orUnknown(on.NetworkType), strings.Join(on.SpecClusterNetwork, ", "), strings.Join(on.SpecServiceNetwork, ", "),
		strings.Join(on.StatusClusterNetwork, ", "), strings.Join(on.StatusServiceNetwork, ", "))
	switch {
	case statusCluster6 && statusService6 && specCluster6 && specService6:
		c.Status, c.Message = report.Pass, "dual-stack applied: "+summary
	case specCluster6 || specService6:
		c.Status = report.Fail
		c.Message = "IPv6 requested in spec but not in status: " + summary
		if on.OperatorDegraded != "" {
			c.Message += "; network operator Degraded: " + on.OperatorDegraded
		}
		c.Remediation = "check `oc get clusteroperator network`; if the operator refuses the change, " + command + " network --revert --yes removes the IPv6 entries again"
	default:
		c.Status = report.Fail
		c.Message = "IPv4 only: " + summary
		c.Remediation = command + " network (appends fd01::/48, hostPrefix 64, to spec.clusterNetwork and fd02::/112 to spec.serviceNetwork of networks.config.openshift.io/cluster, and waits for the network operator)"
	}
	if on.NetworkType != "" && on.NetworkType != "OVNKubernetes" && c.Status != report.Pass {
		c.Message += "; dual-stack needs networkType OVNKubernetes"
	}
	return c
}

// openShiftConversion says whether this OpenShift cluster may be converted
// to dual-stack after installation at all.
func openShiftConversion(p platform.Info, on *OpenShiftNetwork) report.Check {
	c := report.Check{Layer: report.LayerOverlay, Name: "openshift-dual-stack-conversion"}
	if strings.HasPrefix(p.AWSIPFamily, "DualStack") {
		c.Status, c.Message = report.Pass, "installed dual-stack (platformStatus.aws.ipFamily "+p.AWSIPFamily+")"
		return c
	}
	_, status6 := Families(append(append([]string{}, on.StatusClusterNetwork...), on.StatusServiceNetwork...))
	if status6 {
		c.Status, c.Message = report.Pass, "the Network config already carries IPv6"
		return c
	}
	v, err := version.ParseGeneric(p.OpenShiftVersion)
	switch {
	case p.InfrastructurePlatform != "AWS":
		c.Status = report.Pass
		c.Message = fmt.Sprintf("platform %s allows converting an installed cluster to dual-stack", orUnknown(p.InfrastructurePlatform))
	case err != nil:
		c.Status = report.Warn
		c.Message = fmt.Sprintf("cannot tell the OpenShift version (%q), so not whether the network operator allows a day-2 conversion on AWS", p.OpenShiftVersion)
	case !v.LessThan(openShiftAWSRefusal):
		c.Status = report.Fail
		c.Message = fmt.Sprintf("OpenShift %s on AWS: the cluster network operator refuses converting an installed cluster to dual-stack (since 4.%d it goes Degraded with InvalidClusterConfig)", p.OpenShiftVersion, openShiftAWSRefusal.Minor())
		c.Remediation = "install dual-stack instead (install-config platform.aws.ipFamily: DualStackIPv4Primary, on releases that have it); the underlay and gateway layers can still be prepared"
	default:
		c.Status = report.Pass
		c.Message = fmt.Sprintf("OpenShift %s predates the AWS day-2 refusal (4.%d)", p.OpenShiftVersion, openShiftAWSRefusal.Minor())
	}
	return c
}

func familyWord(v4, v6 bool) string {
	switch {
	case v4 && v6:
		return "dual-stack"
	case v4:
		return "IPv4 only"
	case v6:
		return "IPv6 only"
	default:
		return "no addresses"
	}
}

// describeGroups says how many of total nodes fall in each group, naming a few:
// "6 of 6 nodes IPv4 only (a, b, c and 3 more)".
func describeGroups(groups map[string][]string, total int) string {
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d of %d nodes %s (%s)", len(groups[k]), total, k, names(groups[k])))
	}
	return strings.Join(parts, "; ")
}

func names(list []string) string {
	if len(list) <= maxNamed {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:maxNamed], ", ") + " and " + strconv.Itoa(len(list)-maxNamed) + " more"
}

// examples names a few of total things: "a, b, c and 9 more".
func examples(few []string, total int) string {
	out := strings.Join(few, ", ")
	if total > len(few) {
		out += " and " + strconv.Itoa(total-len(few)) + " more"
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
