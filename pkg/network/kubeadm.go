package network

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// Change is one setting of one component that must change, and where.
type Change struct {
	Component string `json:"component"` // kube-apiserver, kube-controller-manager, kube-proxy, kubeadm-config, kubelet
	Where     string `json:"where"`     // the file or object that holds the setting
	Setting   string `json:"setting"`   // flag or field
	Current   string `json:"current"`
	Desired   string `json:"desired"`
	Note      string `json:"note,omitempty"`
	// InAPI says this tool makes the change (a ConfigMap in the API);
	// the others are made on the hosts.
	InAPI bool `json:"inAPI,omitempty"`
}

// Plan is the kubeadm/kind overlay plan: the changes InAPI are made by
// the tool (Edits, on kubeadm with --yes); the others on the hosts.
type Plan struct {
	Changes []Change `json:"changes"`
	// Edits are the ConfigMap texts the tool writes, original and new.
	Edits []cmtext.Edit `json:"edits,omitempty"`
	Notes []string      `json:"notes,omitempty"`
	// KindConfig is the kind cluster config that creates the same cluster
	// dual-stack (kind only).
	KindConfig string `json:"kindConfig,omitempty"`
}

// ClusterFlags is what the control plane runs with today, as read from the
// kube-system static (mirror) pods and ConfigMaps.
type ClusterFlags struct {
	APIServerNodes         []string
	APIServerServiceRange  string
	ControllerNodes        []string
	ControllerClusterCIDR  string
	ControllerServiceRange string
	ControllerNodeMask     string // --node-cidr-mask-size or -ipv4
	ProxyClusterCIDR       string
	ProxyFound             bool
	KubeadmPodSubnet       string
	KubeadmServiceSubnet   string
	KubeadmFound           bool
}

// ReadClusterFlags reads the current flags of the control plane.
func ReadClusterFlags(ctx context.Context, kc kubernetes.Interface) (*ClusterFlags, error) {
	f := &ClusterFlags{}
	for _, comp := range []string{"kube-apiserver", "kube-controller-manager"} {
		pods, err := listPods(ctx, kc, "kube-system", "component="+comp)
		if err != nil {
			return nil, fmt.Errorf("listing the %s static pods in kube-system: %w", comp, err)
		}
		for _, p := range pods {
			flags := podFlags(p)
			if comp == "kube-apiserver" {
				f.APIServerNodes = append(f.APIServerNodes, p.Spec.NodeName)
				f.APIServerServiceRange = first(f.APIServerServiceRange, flags["service-cluster-ip-range"])
				continue
			}
			f.ControllerNodes = append(f.ControllerNodes, p.Spec.NodeName)
			f.ControllerClusterCIDR = first(f.ControllerClusterCIDR, flags["cluster-cidr"])
			f.ControllerServiceRange = first(f.ControllerServiceRange, flags["service-cluster-ip-range"])
			f.ControllerNodeMask = first(f.ControllerNodeMask, flags["node-cidr-mask-size-ipv4"], flags["node-cidr-mask-size"])
		}
	}
	cm, err := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		f.ProxyFound = true
		var conf struct {
			ClusterCIDR string `json:"clusterCIDR"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["config.conf"]), &conf); err != nil {
			return nil, fmt.Errorf("reading kube-system/kube-proxy config.conf: %w", err)
		}
		f.ProxyClusterCIDR = conf.ClusterCIDR
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading kube-system/kube-proxy: %w", err)
	}
	cm, err = kc.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	switch {
	case err == nil:
		f.KubeadmFound = true
		var conf struct {
			Networking struct {
				PodSubnet     string `json:"podSubnet"`
				ServiceSubnet string `json:"serviceSubnet"`
			} `json:"networking"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &conf); err != nil {
			return nil, fmt.Errorf("reading kube-system/kubeadm-config ClusterConfiguration: %w", err)
		}
		f.KubeadmPodSubnet, f.KubeadmServiceSubnet = conf.Networking.PodSubnet, conf.Networking.ServiceSubnet
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading kube-system/kubeadm-config: %w", err)
	}
	if len(f.APIServerNodes) == 0 && len(f.ControllerNodes) == 0 && !f.KubeadmFound {
		return nil, fmt.Errorf("found no kube-apiserver or kube-controller-manager static pods (label component=...) and no kubeadm-config in kube-system: cannot tell how the control plane is configured")
	}
	return f, nil
}

// DualStack reports whether every setting found already carries both families.
func (f *ClusterFlags) DualStack() bool {
	for _, v := range []string{f.APIServerServiceRange, f.ControllerClusterCIDR, f.ControllerServiceRange, f.ProxyClusterCIDR, f.KubeadmPodSubnet, f.KubeadmServiceSubnet} {
		if v != "" && !hasBoth(v) {
			return false
		}
	}
	return f.APIServerServiceRange != "" || f.KubeadmServiceSubnet != ""
}

// Reserved are the ranges in use, for the overlap check, in a fixed order so
// that the same cluster always gives the same error.
func (f *ClusterFlags) Reserved() []Reserved {
	var out []Reserved
	for _, r := range []struct{ what, v string }{
		{"service range", first(f.APIServerServiceRange, f.KubeadmServiceSubnet)},
		{"cluster CIDR", first(f.ControllerClusterCIDR, f.KubeadmPodSubnet, f.ProxyClusterCIDR)},
	} {
		out = append(out, ReservedFromCIDRs("existing "+r.what, splitList(r.v))...)
	}
	return out
}

// KubeadmPlan turns the flags into the changes that make the cluster dual-stack.
func KubeadmPlan(kind platform.Kind, f *ClusterFlags, r Request, nodes []corev1.Node) Plan {
	var p Plan
	svc6, pod6 := r.ServiceNetwork.String(), r.ClusterNetwork.String()
	manifest := func(file string, on []string) string {
		return fmt.Sprintf("/etc/kubernetes/manifests/%s on %s", file, names(on))
	}
	var v6only []string
	add := func(c Change, family6 string) {
		if c.Current == "" && c.Desired == "" {
			return
		}
		if hasBoth(c.Current) {
			return // already dual-stack: nothing to change
		}
		if ipv6Only(c.Current) {
			v6only = append(v6only, fmt.Sprintf("%s %s is %s", c.Component, c.Setting, c.Current))
			return
		}
		if c.Desired == "" {
			c.Desired = appendRange(c.Current, family6)
		}
		if c.Desired == c.Current {
			return
		}
		p.Changes = append(p.Changes, c)
	}
	if len(f.APIServerNodes) > 0 {
		add(Change{Component: "kube-apiserver", Where: manifest("kube-apiserver.yaml", f.APIServerNodes),
			Setting: "--service-cluster-ip-range", Current: f.APIServerServiceRange}, svc6)
	}
	if len(f.ControllerNodes) > 0 {
		where := manifest("kube-controller-manager.yaml", f.ControllerNodes)
		clusterCIDR := first(f.ControllerClusterCIDR, f.KubeadmPodSubnet, f.ProxyClusterCIDR)
		add(Change{Component: "kube-controller-manager", Where: where, Setting: "--cluster-cidr", Current: f.ControllerClusterCIDR,
			Desired: appendRange(clusterCIDR, pod6)}, pod6)
		add(Change{Component: "kube-controller-manager", Where: where, Setting: "--service-cluster-ip-range", Current: f.ControllerServiceRange,
			Desired: appendRange(first(f.ControllerServiceRange, f.APIServerServiceRange), svc6)}, svc6)
		if !hasBoth(f.ControllerClusterCIDR) && !ipv6Only(clusterCIDR) {
			mask4 := first(f.ControllerNodeMask, "24")
			p.Changes = append(p.Changes,
				Change{Component: "kube-controller-manager", Where: where, Setting: "--node-cidr-mask-size-ipv4", Desired: mask4,
					Note: "replaces --node-cidr-mask-size" + ifSet("=", f.ControllerNodeMask) + ", which applies to single-stack only; dual-stack needs one per family"},
				Change{Component: "kube-controller-manager", Where: where, Setting: "--node-cidr-mask-size-ipv6", Desired: itoa(r.HostPrefix)})
		}
	}
	if f.ProxyFound {
		add(Change{Component: "kube-proxy", Where: "ConfigMap kube-system/kube-proxy, config.conf", Setting: "clusterCIDR", Current: f.ProxyClusterCIDR,
			Desired: appendRange(first(f.ProxyClusterCIDR, f.ControllerClusterCIDR, f.KubeadmPodSubnet), pod6),
			Note:    "then restart the kube-proxy DaemonSet"}, pod6)
	}
	if f.KubeadmFound {
		add(Change{Component: "kubeadm-config", Where: "ConfigMap kube-system/kubeadm-config, ClusterConfiguration", Setting: "networking.podSubnet",
			Current: f.KubeadmPodSubnet, Note: "so that kubeadm upgrade and join render the same flags"}, pod6)
		add(Change{Component: "kubeadm-config", Where: "ConfigMap kube-system/kubeadm-config, ClusterConfiguration", Setting: "networking.serviceSubnet",
			Current: f.KubeadmServiceSubnet}, svc6)
	}
	for _, n := range nodes {
		var v4, v6 string
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			switch Family(a.Address) {
			case "IPv4":
				v4 = first(v4, a.Address)
			case "IPv6":
				v6 = first(v6, a.Address)
			}
		}
		if v4 != "" && v6 != "" {
			continue
		}
		if v4 == "" {
			if v6 != "" {
				v6only = append(v6only, "node "+n.Name+" has only the IPv6 InternalIP "+v6)
			}
			continue
		}
		c := Change{Component: "kubelet", Where: "node " + n.Name + " (/var/lib/kubelet/kubeadm-flags.env)", Setting: "--node-ip", Current: v4,
			Desired: v4 + "," + first(v6, "<IPv6 of "+n.Name+">")}
		if v6 == "" {
			c.Note = "the node has no IPv6 InternalIP: give it an IPv6 address first"
		}
		p.Changes = append(p.Changes, c)
	}
	if len(v6only) > 0 {
		p.Notes = append(p.Notes, "IPv6-only settings are left as they are (this tool adds IPv6 to IPv4 clusters, not IPv4 to IPv6 ones): "+strings.Join(v6only, "; "))
	}
	p.Notes = append(p.Notes,
		"nothing was changed: the control-plane flags live in files on the hosts, which this tool does not edit",
		"apply the flag changes on every control-plane node (the kubelet restarts the static pods when their manifests change), then restart kube-proxy and the kubelets",
		"the CNI plugin must also be given the IPv6 pod range (e.g. Calico IPPool, Cilium ipv6 settings)",
		"existing pods keep IPv4-only addresses until they are re-created")
	if kind == platform.KindKind {
		p.Notes = append([]string{"kind cannot change these in place (they live in the node containers): re-create the cluster with the kind config below; the changes are listed to show what differs"}, p.Notes...)
		p.KindConfig = fmt.Sprintf("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  ipFamily: dual\n  podSubnet: %q\n  serviceSubnet: %q\n",
			appendRange(first(f.KubeadmPodSubnet, f.ControllerClusterCIDR, f.ProxyClusterCIDR, "10.244.0.0/16"), pod6),
			appendRange(first(f.KubeadmServiceSubnet, f.APIServerServiceRange, "10.96.0.0/16"), svc6))
	}
	return p
}

func listPods(ctx context.Context, kc kubernetes.Interface, ns, selector string) ([]corev1.Pod, error) {
	return pager.ListAll[corev1.Pod](ctx, metav1.ListOptions{LabelSelector: selector}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Pods(ns).List(ctx, o)
	})
}

// podFlags collects --name=value flags of a pod's first container.
func podFlags(p corev1.Pod) map[string]string {
	flags := map[string]string{}
	if len(p.Spec.Containers) == 0 {
		return flags
	}
	c := p.Spec.Containers[0]
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			value = args[i+1]
		}
		flags[name] = value
	}
	return flags
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func hasBoth(v string) bool {
	l := splitList(v)
	return HasFamily(l, "IPv4") && HasFamily(l, "IPv6")
}

func ifSet(prefix, v string) string {
	if v == "" {
		return ""
	}
	return prefix + v
}

// ipv6Only says the ranges are all IPv6 (and there is at least one).
func ipv6Only(v string) bool {
	l := splitList(v)
	return HasFamily(l, "IPv6") && !HasFamily(l, "IPv4")
}

// appendRange adds the IPv6 range after the existing one(s), keeping the
// primary family first; an existing IPv6 entry is kept as it is.
func appendRange(current, v6 string) string {
	l := splitList(current)
	if HasFamily(l, "IPv6") {
		return current
	}
	return strings.Join(append(l, v6), ",")
}
