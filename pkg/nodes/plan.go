package nodes

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Layer is the journal layer of this package's changes.
const Layer = "nodes"

// Journal operations.
const (
	OpUpdateCloudConfig = "update-cloud-config"
	OpRestartCCM        = "restart-cloud-controller"
)

// Where the cloud config is looked for.
const (
	OpenShiftNamespace = "openshift-config"
	OpenShiftName      = "cloud-provider-config"
	OpenShiftKey       = "config"
	// The CCM's copy on OpenShift, written by its operator: read, never
	// written, to tell why nodes lag.
	OpenShiftCCMNamespace = "openshift-cloud-controller-manager"
	OpenShiftCCMConfigMap = "cloud-conf"
	OpenShiftCCMKey       = "cloud.conf"
	OpenShiftCCMWorkload  = "aws-cloud-controller-manager"
	// DefaultCCMNamespace is where upstream's chart and examples run the CCM.
	DefaultCCMNamespace = "kube-system"
	// ConventionalName is the ConfigMap the CCM is conventionally given
	// (kube-system/cloud-config), looked for when no CCM workload is found.
	ConventionalName = "cloud-config"
)

// ProvidedNodeIPAnnotation is set by a kubelet running with an external
// cloud provider and --node-ip (k8s.io/cloud-provider/api).
const ProvidedNodeIPAnnotation = "alpha.kubernetes.io/provided-node-ip"

// restartedAtAnnotation is what `kubectl rollout restart` sets on a pod
// template.
const restartedAtAnnotation = kube.RestartedAtAnnotation

// How the cloud config was found.
const (
	SourceOption         = "option"                   // named by the options
	SourceOpenShift      = "openshift"                // openshift-config/cloud-provider-config
	SourceCCMWorkload    = "cloud-controller-manager" // the volume behind the CCM's --cloud-config
	SourceConventional   = "conventional"             // kube-system/cloud-config
	SourceNone           = ""                         // not found
	defaultWaitTimeout   = 15 * time.Minute
	nodeStatusPeriodNote = "the cloud node controller re-reads node addresses every --node-status-update-frequency (5m by default)"
)

// Where a node's addresses come from.
const (
	AddressesCloud   = "cloud-provider"    // cloud-provider-aws, from NodeIPFamilies
	AddressesNodeIP  = "kubelet --node-ip" // the provided-node-ip annotation names them
	AddressesKubelet = "kubelet"           // no cloud provider: the kubelet picks them
)

// ConfigMapRef names one key of one ConfigMap.
type ConfigMapRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

func (r ConfigMapRef) String() string { return r.Namespace + "/" + r.Name + " [" + r.Key + "]" }

// IsZero says the reference names nothing.
func (r ConfigMapRef) IsZero() bool { return r == ConfigMapRef{} }

// Workload is a CCM Deployment or DaemonSet.
type Workload struct {
	Kind      string `json:"kind"` // Deployment or DaemonSet
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (w Workload) String() string {
	return strings.ToLower(w.Kind) + "/" + w.Name + " -n " + w.Namespace
}

// Options shape a run.
type Options struct {
	// CloudConfig names the cloud config ConfigMap and key; zero: detect
	// (OpenShift's, then the CCM workload's, then kube-system/cloud-config).
	CloudConfig ConfigMapRef `json:"cloudConfig,omitempty"`
	// InfraCloudConfig is what infrastructures.config.openshift.io/cluster
	// spec.cloudConfig names ({name, key} in openshift-config), when the
	// engine knows it; zero means the installer's default.
	InfraCloudConfig ConfigMapRef `json:"infraCloudConfig,omitempty"`
	// CCMNamespace is where the CCM workload is looked for (kube-system).
	CCMNamespace string `json:"ccmNamespace,omitempty"`
	// ENIIPv6 is, per node name, the IPv6 addresses of its instance's
	// primary ENI as AWS discovery knows them; nil: unknown. It decides
	// nothing in the plan; it names the per-node --node-ip value and the
	// likely cause of a node that lags.
	ENIIPv6 map[string][]string `json:"-"`
	// Timeout bounds Wait (15m by default: one CCM restart plus a few
	// node-status periods).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Validate checks the options on their own (cli.UsageError, exit 2).
func (o *Options) Validate() error {
	if r := o.CloudConfig; !r.IsZero() && (r.Namespace == "" || r.Name == "" || r.Key == "") {
		return cli.Usagef("the cloud config must be named as namespace, name and data key (got %q/%q key %q)", r.Namespace, r.Name, r.Key)
	}
	if o.Timeout < 0 {
		return cli.Usagef("the node wait timeout must not be negative, got %s", o.Timeout)
	}
	for node, addrs := range o.ENIIPv6 {
		for _, a := range addrs {
			if ipfamily.Of(a) != ipfamily.IPv6 || strings.Contains(a, "/") {
				return cli.Usagef("the ENI address %q given for node %s is not an IPv6 address", a, node)
			}
		}
	}
	return nil
}

// Action is what a plan does.
type Action string

const (
	ActionChange  Action = "change"  // the cloud config changes (and the CCM restarts)
	ActionWait    Action = "wait"    // nothing to change here; nodes still lack IPv6 (host-side changes, or a CCM to catch up)
	ActionNothing Action = "nothing" // every node has both families
	ActionBlocked Action = "blocked" // see Blocker
)

// CloudConfigPlan is the cloud config and what Apply writes to it.
type CloudConfigPlan struct {
	ConfigMapRef
	// Source says how it was found (option, openshift, cloud-controller-manager, conventional).
	Source          string    `json:"source"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	// KeyPresent is false when the ConfigMap has no such key yet (the CCM
	// then runs on its defaults): Apply adds it, Rollback removes it.
	KeyPresent bool `json:"keyPresent"`
	// Current is NodeIPFamilies as written (none: the CCM's default, ipv4
	// only); Target what Apply leaves.
	Current []string `json:"current"`
	Target  []string `json:"target"`
	Change  bool     `json:"change"`
	// Original is the text as planned from, in full; New the exact text
	// Apply writes (equal to Original when nothing changes).
	Original string `json:"original"`
	New      string `json:"new"`
	// Diff is the lines added, as a unified diff hunk.
	Diff []string `json:"diff,omitempty"`
	// Downstream is the CCM's own copy (OpenShift: its operators derive it
	// from this one), read to tell why nodes lag; never written.
	Downstream *ConfigMapRef `json:"downstream,omitempty"`
}

// NodeView is one Node: what it reports and where that comes from.
type NodeView struct {
	Name       string   `json:"name"`
	ProviderID string   `json:"providerID,omitempty"`
	IPv4       []string `json:"ipv4,omitempty"` // InternalIPs
	IPv6       []string `json:"ipv6,omitempty"`
	// ENIIPv6 is what discovery says its primary ENI has (nil: unknown).
	ENIIPv6 []string `json:"eniIPv6,omitempty"`
	// Addresses is where its addresses come from: cloud-provider,
	// kubelet --node-ip, kubelet.
	Addresses string `json:"addresses"`
	// ProvidedNodeIP is the kubelet's --node-ip, from the annotation.
	ProvidedNodeIP string `json:"providedNodeIP,omitempty"`
	// HostChange, when set, is the change on the node's host it needs
	// (this tool does not make it): the kubelet's --node-ip.
	HostChange string `json:"hostChange,omitempty"`
	// Done says the node has an IPv4 and an IPv6 InternalIP (and, when
	// the ENI's addresses are known, the IPv6 one is the ENI's).
	Done bool `json:"done"`
	// Cause is why it is not done, when Wait gave up on it.
	Cause string `json:"cause,omitempty"`
}

// Plan is what Apply does: plain data, to show, save and compare.
type Plan struct {
	Options Options          `json:"options"`
	Action  Action           `json:"action"`
	Summary string           `json:"summary"`
	Cloud   *CloudConfigPlan `json:"cloudConfig,omitempty"`
	// Restart is the CCM workload Apply restarts after changing the cloud
	// config, because it reads the file only at start. Nil on OpenShift,
	// whose operator rolls the CCM itself when its copy changes.
	Restart *Workload `json:"restart,omitempty"`
	// CCM is the CCM workload found (for messages), restarted or not.
	CCM       *Workload  `json:"ccm,omitempty"`
	OpenShift bool       `json:"openShift"`
	Nodes     []NodeView `json:"nodes"`
	// NodesDone counts nodes with both families; HostChanges nodes that
	// need their kubelet's --node-ip changed on the host.
	NodesDone   int      `json:"nodesDone"`
	HostChanges int      `json:"hostChanges"`
	Blocker     string   `json:"blocker,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Journal is where changes are recorded before they are made.
// *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Converter plans and applies the nodes phase.
type Converter struct {
	Kube    kubernetes.Interface
	Journal Journal // not needed to plan
	Options Options
	// Progress hears "n of N nodes have IPv6" while Wait runs; nil: silent.
	Progress func(msg string)
	// Now is the clock of the restart annotation (time.Now by default).
	Now func() time.Time
}

// Plan reads the cloud config and the Nodes and says what Apply would do.
// It changes nothing. A cloud config named by the options that does not
// exist, or a bad option, is a cli.UsageError.
func (c *Converter) Plan(ctx context.Context) (*Plan, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{Options: c.Options, Nodes: []NodeView{}}
	nodes, err := kube.ListNodes(ctx, c.Kube, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Explain("listing nodes", err)
	}
	loc, err := c.locate(ctx, p)
	if err != nil {
		return nil, err
	}
	if loc != nil {
		if err := c.planCloudConfig(ctx, p, loc); err != nil {
			return nil, err
		}
	}
	for i := range nodes {
		p.Nodes = append(p.Nodes, c.view(&nodes[i], p))
	}
	sort.Slice(p.Nodes, func(a, b int) bool { return p.Nodes[a].Name < p.Nodes[b].Name })
	cloudNodes := 0
	for _, n := range p.Nodes {
		if n.Done {
			p.NodesDone++
		}
		if n.HostChange != "" {
			p.HostChanges++
		}
		if n.Addresses != AddressesKubelet {
			cloudNodes++
		}
	}
	c.decide(p, cloudNodes)
	return p, nil
}

// located is a cloud config found, before it is read.
type located struct {
	ref        ConfigMapRef
	source     string
	downstream *ConfigMapRef
	openshift  bool
	ccm        *Workload
	restart    bool
	cm         *corev1.ConfigMap // read while looking
}

// locate finds the cloud config (nil when there is none to edit, with the
// reason in the plan).
func (c *Converter) locate(ctx context.Context, p *Plan) (*located, error) {
	o := c.Options
	cms := func(ns string) interface {
		Get(context.Context, string, metav1.GetOptions) (*corev1.ConfigMap, error)
	} {
		return c.Kube.CoreV1().ConfigMaps(ns)
	}
	get := func(r ConfigMapRef) (*corev1.ConfigMap, error) {
		cm, err := cms(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, kube.Explain("reading the cloud config "+r.Namespace+"/"+r.Name, err)
		}
		return cm, nil
	}
	ccmNS := o.CCMNamespace
	if ccmNS == "" {
		ccmNS = DefaultCCMNamespace
	}

	// OpenShift first: its cloud config is the user's to edit; the CCM's
	// copy is derived from it.
	osRef := ConfigMapRef{Namespace: OpenShiftNamespace, Name: OpenShiftName, Key: OpenShiftKey}
	if r := o.InfraCloudConfig; r.Name != "" {
		osRef.Name = r.Name
		if r.Key != "" {
			osRef.Key = r.Key
		}
	}
	if !o.CloudConfig.IsZero() {
		cm, err := get(o.CloudConfig)
		if err != nil {
			return nil, err
		}
		if cm == nil {
			return nil, cli.Usagef("there is no ConfigMap %s/%s (named as the cloud config)", o.CloudConfig.Namespace, o.CloudConfig.Name)
		}
		l := &located{ref: o.CloudConfig, source: SourceOption, cm: cm, openshift: o.CloudConfig.Namespace == OpenShiftNamespace}
		if l.openshift {
			l.downstream = &ConfigMapRef{Namespace: OpenShiftCCMNamespace, Name: OpenShiftCCMConfigMap, Key: OpenShiftCCMKey}
			l.ccm = &Workload{Kind: "Deployment", Namespace: OpenShiftCCMNamespace, Name: OpenShiftCCMWorkload}
		} else if w, _, err := c.findCCM(ctx, ccmNS); err == nil && w != nil {
			l.ccm, l.restart = w, true
		}
		return l, nil
	}
	cm, err := get(osRef)
	if apierrors.IsForbidden(err) {
		// RBAC answers before the namespace's existence is known: a user
		// of a plain cluster may not read openshift-config at all.
		p.Notes = append(p.Notes, fmt.Sprintf("could not read %s/%s (forbidden): not treated as OpenShift", osRef.Namespace, osRef.Name))
		cm, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	openshift := cm != nil || o.InfraCloudConfig.Name != ""
	if !openshift {
		if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, OpenShiftNamespace, metav1.GetOptions{}); err == nil {
			openshift = true
		}
	}
	if openshift {
		p.OpenShift = true
		if cm == nil {
			p.Blocker = fmt.Sprintf("this is OpenShift, but there is no cloud config ConfigMap %s/%s (older installers wrote none for AWS): create it with the key %q holding \"[Global]\\nNodeIPFamilies=ipv4\\nNodeIPFamilies=ipv6\\n\" and point infrastructures.config.openshift.io/cluster spec.cloudConfig at it (name %s, key %s), or name it with the cloud config options; this tool does not change the Infrastructure",
				osRef.Namespace, osRef.Name, osRef.Key, osRef.Name, osRef.Key)
			return nil, nil
		}
		return &located{ref: osRef, source: SourceOpenShift, cm: cm, openshift: true,
			downstream: &ConfigMapRef{Namespace: OpenShiftCCMNamespace, Name: OpenShiftCCMConfigMap, Key: OpenShiftCCMKey},
			ccm:        &Workload{Kind: "Deployment", Namespace: OpenShiftCCMNamespace, Name: OpenShiftCCMWorkload}}, nil
	}

	// Elsewhere: the volume behind the CCM's --cloud-config.
	w, where, err := c.findCCM(ctx, ccmNS)
	if err != nil {
		return nil, err
	}
	p.CCM = w
	if w != nil {
		switch {
		case where.hostPath != "":
			p.Blocker = fmt.Sprintf("the cloud controller %s reads its cloud config from the host file %s (a hostPath volume): add `NodeIPFamilies=ipv4` and `NodeIPFamilies=ipv6` under [Global] there on every host that runs it, restart it, and run again", w, where.hostPath)
			return nil, nil
		case where.ref.IsZero() && where.flag != "":
			p.Blocker = fmt.Sprintf("the cloud controller %s reads its cloud config from %s, which no ConfigMap volume of it holds: name the ConfigMap with the cloud config options", w, where.flag)
			return nil, nil
		case !where.ref.IsZero():
			cm, err := get(where.ref)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				p.Blocker = fmt.Sprintf("the cloud controller %s mounts the ConfigMap %s/%s, which does not exist", w, where.ref.Namespace, where.ref.Name)
				return nil, nil
			}
			return &located{ref: where.ref, source: SourceCCMWorkload, cm: cm, ccm: w, restart: true}, nil
		}
		// A CCM without --cloud-config runs on its defaults: ipv4 only.
		p.Notes = append(p.Notes, fmt.Sprintf("the cloud controller %s runs without --cloud-config, so with NodeIPFamilies ipv4 only", w))
	}
	conv := ConfigMapRef{Namespace: ccmNS, Name: ConventionalName}
	cm, err = get(conv)
	if err != nil {
		return nil, err
	}
	if cm != nil {
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		if len(keys) == 1 {
			conv.Key = keys[0]
			return &located{ref: conv, source: SourceConventional, cm: cm, ccm: w, restart: w != nil}, nil
		}
		p.Notes = append(p.Notes, fmt.Sprintf("%s/%s exists but has %d keys: name the one the cloud controller reads with the cloud config options", conv.Namespace, conv.Name, len(keys)))
	}
	return nil, nil
}

// ccmVolume is where a CCM's --cloud-config points.
type ccmVolume struct {
	flag     string       // the --cloud-config path
	ref      ConfigMapRef // the ConfigMap key behind it
	hostPath string       // or a file on the host
}

// findCCM looks for cloud-provider-aws among the DaemonSets and Deployments
// of ns: a container run with --cloud-provider=aws (or named
// aws-cloud-controller-manager).
func (c *Converter) findCCM(ctx context.Context, ns string) (*Workload, ccmVolume, error) {
	type cand struct {
		w    Workload
		spec corev1.PodSpec
	}
	var cands []cand
	dss, err := c.Kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsForbidden(err) {
		return nil, ccmVolume{}, kube.Explain("listing daemonsets in "+ns+" (to find the cloud controller)", err)
	}
	if err == nil {
		for _, d := range dss.Items {
			cands = append(cands, cand{Workload{"DaemonSet", d.Namespace, d.Name}, d.Spec.Template.Spec})
		}
	}
	var deps *appsv1.DeploymentList
	deps, err = c.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsForbidden(err) {
		return nil, ccmVolume{}, kube.Explain("listing deployments in "+ns+" (to find the cloud controller)", err)
	}
	if err == nil {
		for _, d := range deps.Items {
			cands = append(cands, cand{Workload{"Deployment", d.Namespace, d.Name}, d.Spec.Template.Spec})
		}
	}
	for _, cd := range cands {
		for _, ctr := range cd.spec.Containers {
			args := append(slices.Clone(ctr.Command), ctr.Args...)
			provider, cfg := flagValue(args, "cloud-provider"), flagValue(args, "cloud-config")
			if provider != "aws" && !(provider == "" && ctr.Name == "aws-cloud-controller-manager") {
				continue
			}
			w := cd.w
			return &w, volumeFor(cd.spec, ctr, cfg, cd.w.Namespace), nil
		}
	}
	return nil, ccmVolume{}, nil
}

// flagValue finds --name=value or --name value among args (each arg may
// be a shell line, as OpenShift's CCM runs through bash -c).
func flagValue(args []string, name string) string {
	var words []string
	for _, a := range args {
		words = append(words, strings.Fields(a)...)
	}
	for i, w := range words {
		w = strings.TrimPrefix(strings.TrimPrefix(w, "-"), "-")
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return strings.Trim(v, `"'`)
		}
		if w == name && i+1 < len(words) {
			return strings.Trim(words[i+1], `"'`)
		}
	}
	return ""
}

// volumeFor follows the file path to the volume mounted over it.
func volumeFor(spec corev1.PodSpec, ctr corev1.Container, file, ns string) ccmVolume {
	out := ccmVolume{flag: file}
	if file == "" {
		return out
	}
	best := -1
	for i, m := range ctr.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if file == mp || strings.HasPrefix(file, mp+"/") {
			if best < 0 || len(mp) > len(strings.TrimSuffix(ctr.VolumeMounts[best].MountPath, "/")) {
				best = i
			}
		}
	}
	if best < 0 {
		return out
	}
	m := ctr.VolumeMounts[best]
	rel := strings.TrimPrefix(strings.TrimPrefix(file, strings.TrimSuffix(m.MountPath, "/")), "/")
	if m.SubPath != "" {
		rel = path.Join(m.SubPath, rel)
	}
	for _, v := range spec.Volumes {
		if v.Name != m.Name {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			key := rel
			for _, it := range v.ConfigMap.Items {
				if it.Path == rel {
					key = it.Key
				}
			}
			out.ref = ConfigMapRef{Namespace: ns, Name: v.ConfigMap.Name, Key: key}
		case v.HostPath != nil:
			out.hostPath = path.Join(v.HostPath.Path, rel)
		}
	}
	return out
}

// planCloudConfig reads the config found and plans its edit.
func (c *Converter) planCloudConfig(ctx context.Context, p *Plan, l *located) error {
	p.OpenShift = p.OpenShift || l.openshift
	p.CCM = l.ccm
	cm := l.cm
	text, present := cm.Data[l.ref.Key]
	if _, bin := cm.BinaryData[l.ref.Key]; bin {
		p.Blocker = fmt.Sprintf("%s holds the cloud config as binaryData: edit it by hand", l.ref)
		return nil
	}
	cp := &CloudConfigPlan{ConfigMapRef: l.ref, Source: l.source, UID: cm.UID, ResourceVersion: cm.ResourceVersion,
		KeyPresent: present, Original: text, New: text, Downstream: l.downstream}
	p.Cloud = cp
	cur, err := Families(text)
	if err != nil {
		p.Blocker = fmt.Sprintf("the cloud config %s cannot be edited safely: %v", l.ref, err)
		return nil
	}
	cp.Current = cur
	edit, err := AddDualStack(text)
	if err != nil {
		p.Blocker = fmt.Sprintf("the cloud config %s: %v", l.ref, err)
		return nil
	}
	cp.Target, cp.New, cp.Diff = edit.Target, edit.Text, edit.Diff
	cp.Change = edit.Text != text || !present
	if cp.Change && l.restart && l.ccm != nil {
		p.Restart = l.ccm
	}
	if cp.Change && !l.openshift && l.ccm == nil {
		p.Notes = append(p.Notes, "no cloud controller workload was found to restart: restart cloud-provider-aws yourself after the change (it reads its config only at start)")
	}
	return nil
}

// view is one node as planned.
func (c *Converter) view(n *corev1.Node, p *Plan) NodeView {
	v := NodeView{Name: n.Name, ProviderID: n.Spec.ProviderID,
		IPv4: ipfamily.NodeInternalIPs(n, ipfamily.IPv4), IPv6: ipfamily.NodeInternalIPs(n, ipfamily.IPv6)}
	if eni, ok := c.Options.ENIIPv6[n.Name]; ok {
		v.ENIIPv6 = append([]string{}, eni...)
	}
	provided, annotated := n.Annotations[ProvidedNodeIPAnnotation]
	switch {
	case annotated:
		v.Addresses, v.ProvidedNodeIP = AddressesNodeIP, provided
	case n.Spec.ProviderID != "":
		v.Addresses = AddressesCloud
	default:
		v.Addresses = AddressesKubelet
	}
	v.Done = nodeDone(n, v.ENIIPv6, c.Options.ENIIPv6 != nil)
	if !v.Done {
		v.HostChange = hostChange(v)
	}
	return v
}

// nodeDone: an IPv4 and an IPv6 InternalIP, the IPv6 one the ENI's when
// the ENI is known.
func nodeDone(n *corev1.Node, eni []string, eniKnown bool) bool {
	v4, v6 := ipfamily.NodeInternalIPs(n, ipfamily.IPv4), ipfamily.NodeInternalIPs(n, ipfamily.IPv6)
	if len(v4) == 0 || len(v6) == 0 {
		return false
	}
	if !eniKnown || eni == nil {
		return true
	}
	for _, a := range v6 {
		for _, e := range eni {
			if sameIP(a, e) {
				return true
			}
		}
	}
	return false
}

func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x == y
}

// hostChange is the --node-ip a node needs, "" when its addresses come
// from the cloud provider alone.
func hostChange(v NodeView) string {
	v6 := "<the IPv6 address of its primary ENI>"
	if len(v.ENIIPv6) > 0 {
		v6 = v.ENIIPv6[0]
	}
	v4 := "<its IPv4 InternalIP>"
	if len(v.IPv4) > 0 {
		v4 = v.IPv4[0]
	}
	switch v.Addresses {
	case AddressesNodeIP:
		var hasV6 bool
		for _, ip := range strings.Split(v.ProvidedNodeIP, ",") {
			if ipfamily.Of(ip) == ipfamily.IPv6 {
				hasV6 = true
			}
		}
		if hasV6 {
			return ""
		}
		return fmt.Sprintf("the kubelet runs with --node-ip=%s, and the cloud node controller keeps only the InternalIPs --node-ip names: set --node-ip=%s,%s (a dual-stack --node-ip with a cloud provider needs Kubernetes 1.29 or later) where the kubelet's flags live (kubeadm: KUBELET_EXTRA_ARGS or nodeRegistration.kubeletExtraArgs), then restart the kubelet",
			v.ProvidedNodeIP, v4, v6)
	case AddressesKubelet:
		return fmt.Sprintf("the node has no cloud provider (no spec.providerID), so the kubelet picks its addresses: set --node-ip=%s,%s and restart the kubelet", v4, v6)
	}
	return ""
}

// decide sets the plan's action and summary.
func (c *Converter) decide(p *Plan, cloudNodes int) {
	total := len(p.Nodes)
	switch {
	case p.Blocker != "" && (cloudNodes > 0 || p.Cloud != nil):
		p.Action = ActionBlocked
		p.Summary = "blocked: " + p.Blocker
		return
	case p.Blocker != "":
		// No node takes its addresses from the cloud provider: the cloud
		// config does not matter.
		p.Notes = append(p.Notes, "not needed, no node takes its addresses from the cloud provider: "+p.Blocker)
		p.Blocker = ""
	case p.Cloud == nil && cloudNodes > 0:
		p.Blocker = fmt.Sprintf("%d of %d nodes take their addresses from the AWS cloud provider, but no cloud config ConfigMap was found for it: name it (namespace, name, data key) with the cloud config options", cloudNodes, total)
		p.Action, p.Summary = ActionBlocked, "blocked: "+p.Blocker
		return
	}
	switch {
	case p.Cloud != nil && p.Cloud.Change:
		p.Action = ActionChange
		p.Summary = fmt.Sprintf("add NodeIPFamilies %s to %s (now %s)", strings.Join(p.Cloud.Target, ","), p.Cloud.ConfigMapRef, familiesString(p.Cloud.Current))
		if p.Restart != nil {
			p.Summary += ", restart " + p.Restart.String()
		}
	case p.NodesDone == total:
		p.Action = ActionNothing
		p.Summary = fmt.Sprintf("all %d nodes have IPv4 and IPv6 InternalIPs", total)
		return
	default:
		p.Action = ActionWait
		p.Summary = "the cloud config already lists both families"
		if p.Cloud == nil {
			p.Summary = "no cloud config to change"
		}
	}
	p.Summary += fmt.Sprintf("; then wait for %d of %d nodes to report an IPv6 InternalIP", total-p.NodesDone, total)
	if p.HostChanges > 0 {
		p.Summary += fmt.Sprintf(" (%d also need their kubelet's --node-ip changed on the host, after the cloud config: see each node)", p.HostChanges)
	}
}

func familiesString(f []string) string {
	if len(f) == 0 {
		return "unset: ipv4 only"
	}
	return strings.Join(f, ",")
}

// Diff says how two plans differ in what they change, "" when they change
// the same: the same ConfigMap (by UID) from the same text to the same
// text, the same restart. Resource versions do not count.
func Diff(was, now *Plan) string {
	key := func(p *Plan) string {
		if p.Cloud == nil || !p.Cloud.Change {
			return "no cloud config change"
		}
		return fmt.Sprintf("%s (uid %s) %q -> %q", p.Cloud.ConfigMapRef, p.Cloud.UID, p.Cloud.Original, p.Cloud.New)
	}
	var d []string
	if a, b := key(was), key(now); a != b {
		d = append(d, fmt.Sprintf("cloud config: planned %s, now %s", a, b))
	}
	ws, ns := "", ""
	if was.Restart != nil {
		ws = was.Restart.String()
	}
	if now.Restart != nil {
		ns = now.Restart.String()
	}
	if ws != ns {
		d = append(d, fmt.Sprintf("restart: planned %q, now %q", ws, ns))
	}
	if was.Blocker != now.Blocker {
		d = append(d, fmt.Sprintf("blocker %q, now %q", was.Blocker, now.Blocker))
	}
	return strings.Join(d, "; ")
}
