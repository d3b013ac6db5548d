package harness

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// NetworkOperator simulates the part of OpenShift's cluster network operator
// (openshift/cluster-network-operator) that matters to a dual-stack
// conversion. It watches networks.config.openshift.io/cluster and, on every
// change of spec:
//   - validates it as the operator does: parseable CIDRs; at most one service
//     network per family; cluster and service networks of the same families;
//     hostPrefix not larger than its CIDR and at most bits-2; no overlap
//     between any of them, nor with OVN-Kubernetes' internal IPv6 subnets
//     (defaults, or the operator config's own); networkType set;
//   - checks the change against what is applied (status) as the operator
//     does: single -> dual only where the platform allows a day-2
//     conversion (BareMetal, None, VSphere; AWS only before 4.11), the primary
//     service network and the existing cluster networks unchanged, added
//     cluster networks of the other family only; dual -> single back to the
//     original; no other range change;
//   - accepted: Progressing=True for RolloutDelay, then spec mirrored into
//     status and Available=True, Progressing=False, Degraded=False;
//   - refused: Degraded=True with reason InvalidClusterConfig and the
//     operator's message, Progressing=False, status unchanged.
type NetworkOperator struct {
	dc      dynamic.Interface
	delay   time.Duration
	rollout func(context.Context, bool) error
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	paused bool
}

// NetworkOperatorOptions tune the simulator.
type NetworkOperatorOptions struct {
	// RolloutDelay is how long an accepted change stays Progressing before
	// status shows it. Default 300ms.
	RolloutDelay time.Duration
	// Rollout, when set, is the rollout itself, run before status shows
	// the change, as the operator reports it only once OVN-Kubernetes runs
	// with it: ipv6 says whether the new cluster network has IPv6.
	Rollout func(ctx context.Context, ipv6 bool) error
}

var (
	networksConfigGVR  = configGVR("networks")
	clusterOperatorGVR = configGVR("clusteroperators")
	operatorNetworkGVR = schema.GroupVersionResource{Group: "operator.openshift.io", Version: "v1", Resource: "networks"}
)

// StartNetworkOperator runs the simulator until Stop or ctx ends.
func StartNetworkOperator(ctx context.Context, api *APIServer, opts NetworkOperatorOptions) *NetworkOperator {
	if opts.RolloutDelay == 0 {
		opts.RolloutDelay = 300 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &NetworkOperator{dc: api.Dynamic, delay: opts.RolloutDelay, rollout: opts.Rollout, trigger: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go n.watch(ctx)
	go n.loop(ctx)
	return n
}

// Stop ends the simulator and waits for it.
func (n *NetworkOperator) Stop() {
	n.cancel()
	<-n.done
}

// Pause stops reconciling (the operator is stuck); Resume catches up.
func (n *NetworkOperator) Pause() {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
}

// Resume reconciles again, starting with the current spec.
func (n *NetworkOperator) Resume() {
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	n.kick()
}

func (n *NetworkOperator) kick() {
	select {
	case n.trigger <- struct{}{}:
	default:
	}
}

func (n *NetworkOperator) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// watch turns every change of the Network config into a reconcile.
func (n *NetworkOperator) watch(ctx context.Context) {
	sel := metav1.ListOptions{FieldSelector: "metadata.name=cluster"}
	for ctx.Err() == nil {
		list, err := n.dc.Resource(networksConfigGVR).List(ctx, sel)
		if err != nil { // the apiserver is starting or stopping: try again
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		n.kick()
		w, err := n.dc.Resource(networksConfigGVR).Watch(ctx, metav1.ListOptions{FieldSelector: sel.FieldSelector, ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				n.kick()
			}
		}
		w.Stop()
	}
}

func (n *NetworkOperator) loop(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.trigger:
			if n.isPaused() {
				continue
			}
			if err := n.reconcile(ctx); err != nil && ctx.Err() == nil && apierrors.IsConflict(err) {
				n.kick() // someone wrote meanwhile: start over from the new state
			}
		}
	}
}

// networkSpec is the part of a Network config the operator acts on.
type networkSpec struct {
	NetworkType    string
	ClusterNetwork []ClusterNetworkEntry
	ServiceNetwork []string
}

func readNetworkSpec(obj map[string]any, section string) networkSpec {
	var s networkSpec
	s.NetworkType, _, _ = unstructured.NestedString(obj, section, "networkType")
	cn, _, _ := unstructured.NestedSlice(obj, section, "clusterNetwork")
	for _, e := range cn {
		m, _ := e.(map[string]any)
		cidr, _ := m["cidr"].(string)
		var hp int64
		switch v := m["hostPrefix"].(type) {
		case int64:
			hp = v
		case float64:
			hp = int64(v)
		}
		s.ClusterNetwork = append(s.ClusterNetwork, ClusterNetworkEntry{CIDR: cidr, HostPrefix: hp})
	}
	sn, _, _ := unstructured.NestedStringSlice(obj, section, "serviceNetwork")
	s.ServiceNetwork = sn
	return s
}

func (n *NetworkOperator) reconcile(ctx context.Context) error {
	nw, err := n.dc.Resource(networksConfigGVR).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec := readNetworkSpec(nw.Object, "spec")
	applied := readNetworkSpec(nw.Object, "status")
	if reflect.DeepEqual(spec.ClusterNetwork, applied.ClusterNetwork) && reflect.DeepEqual(spec.ServiceNetwork, applied.ServiceNetwork) {
		return n.setConditions(ctx, "True", "False", "False", "AsExpected", "")
	}
	platformType, release, err := n.platform(ctx)
	if err != nil {
		return err
	}
	internal, err := n.ovnInternalSubnets(ctx)
	if err != nil {
		return err
	}
	if err := validateNetworkSpec(spec, internal); err == nil {
		err = checkNetworkChange(applied, spec, platformType, release)
		if err != nil {
			return n.refuse(ctx, err)
		}
	} else {
		return n.refuse(ctx, err)
	}

	if err := n.setConditions(ctx, "True", "True", "False", "Deploying", "rolling out the new cluster network configuration"); err != nil {
		return err
	}
	if !sleepCtx(ctx, n.delay) {
		return ctx.Err()
	}
	if n.isPaused() {
		return nil
	}
	if n.rollout != nil {
		ipv6 := false
		for _, e := range spec.ClusterNetwork {
			if p, err := netip.ParsePrefix(e.CIDR); err == nil && p.Addr().Is6() {
				ipv6 = true
			}
		}
		if err := n.rollout(ctx, ipv6); err != nil {
			return err
		}
	}
	// Mirror the accepted spec into status, from the object as read: if spec
	// changed meanwhile, the update conflicts and reconcile starts over.
	cn := make([]any, 0, len(spec.ClusterNetwork))
	for _, e := range spec.ClusterNetwork {
		cn = append(cn, map[string]any{"cidr": e.CIDR, "hostPrefix": e.HostPrefix})
	}
	sn := make([]any, 0, len(spec.ServiceNetwork))
	for _, s := range spec.ServiceNetwork {
		sn = append(sn, s)
	}
	_ = unstructured.SetNestedSlice(nw.Object, cn, "status", "clusterNetwork")
	_ = unstructured.SetNestedSlice(nw.Object, sn, "status", "serviceNetwork")
	if _, err := n.dc.Resource(networksConfigGVR).Update(ctx, nw, metav1.UpdateOptions{}); err != nil {
		return err
	}
	return n.setConditions(ctx, "True", "False", "False", "AsExpected", "")
}

func (n *NetworkOperator) refuse(ctx context.Context, err error) error {
	return n.setConditions(ctx, "True", "False", "True", "InvalidClusterConfig",
		fmt.Sprintf("The cluster configuration is invalid (%v). Use 'oc edit network.config.openshift.io cluster' to fix.", err))
}

func (n *NetworkOperator) platform(ctx context.Context) (string, string, error) {
	infra, err := n.dc.Resource(configGVR("infrastructures")).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("the operator needs the Infrastructure: %w", err)
	}
	pt, _, _ := unstructured.NestedString(infra.Object, "status", "platformStatus", "type")
	if pt == "" {
		pt, _, _ = unstructured.NestedString(infra.Object, "status", "platform")
	}
	cv, err := n.dc.Resource(configGVR("clusterversions")).Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return pt, "", nil
	}
	v, _, _ := unstructured.NestedString(cv.Object, "status", "desired", "version")
	return pt, v, nil
}

// ovnInternalSubnets are OVN-Kubernetes' internal IPv6 subnets: the
// operator config's values where set, else the defaults.
func (n *NetworkOperator) ovnInternalSubnets(ctx context.Context) (map[string]string, error) {
	subnets := map[string]string{
		"internalJoinSubnet":          "fd98::/64",
		"internalTransitSwitchSubnet": "fd97::/64",
		"internalMasqueradeSubnet":    "fd69::/112",
	}
	op, err := n.dc.Resource(operatorNetworkGVR).Get(ctx, "cluster", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return subnets, nil
	}
	if err != nil {
		return nil, err
	}
	base := []string{"spec", "defaultNetwork", "ovnKubernetesConfig"}
	for name, path := range map[string][]string{
		"internalJoinSubnet":          {"ipv6", "internalJoinSubnet"},
		"internalTransitSwitchSubnet": {"ipv6", "internalTransitSwitchSubnet"},
		"internalMasqueradeSubnet":    {"gatewayConfig", "ipv6", "internalMasqueradeSubnet"},
	} {
		if v, _, _ := unstructured.NestedString(op.Object, append(base, path...)...); v != "" {
			subnets[name] = v
		}
	}
	if v, _, _ := unstructured.NestedString(op.Object, append(base, "v6InternalSubnet")...); v != "" && subnets["internalJoinSubnet"] == "fd98::/64" {
		subnets["internalJoinSubnet"] = v
	}
	return subnets, nil
}

// validateNetworkSpec is the operator's check of a config on its own.
func validateNetworkSpec(s networkSpec, internal map[string]string) error {
	type named struct {
		what string
		p    netip.Prefix
	}
	var pool []named
	add := func(what string, p netip.Prefix) error {
		for _, q := range pool {
			if q.p.Overlaps(p) {
				return fmt.Errorf("Whole or subset of %s is already in use: %s overlaps %s", what, p, q.p)
			}
		}
		pool = append(pool, named{what, p})
		return nil
	}
	var v4Service, v6Service, v4Cluster, v6Cluster bool
	if len(s.ServiceNetwork) == 0 {
		return fmt.Errorf("spec.serviceNetwork must have at least 1 entry")
	}
	for _, sn := range s.ServiceNetwork {
		p, err := netip.ParsePrefix(sn)
		if err != nil {
			return fmt.Errorf("could not parse spec.serviceNetwork %s", sn)
		}
		if p.Addr().Is6() {
			v6Service = true
		} else {
			v4Service = true
		}
		if err := add("ServiceNetwork CIDR "+sn, p.Masked()); err != nil {
			return err
		}
	}
	if len(s.ServiceNetwork) > 2 || (len(s.ServiceNetwork) == 2 && !(v4Service && v6Service)) {
		return fmt.Errorf("spec.serviceNetwork must contain at most one IPv4 and one IPv6 network")
	}
	if len(s.ClusterNetwork) == 0 {
		return fmt.Errorf("spec.clusterNetwork must have at least 1 entry")
	}
	for _, cn := range s.ClusterNetwork {
		p, err := netip.ParsePrefix(cn.CIDR)
		if err != nil {
			return fmt.Errorf("could not parse spec.clusterNetwork %s", cn.CIDR)
		}
		if p.Addr().Is6() {
			v6Cluster = true
		} else {
			v4Cluster = true
		}
		ones, bits := p.Bits(), p.Addr().BitLen()
		if int(cn.HostPrefix) < ones {
			return fmt.Errorf("hostPrefix %d is larger than its cidr %s", cn.HostPrefix, cn.CIDR)
		}
		if int(cn.HostPrefix) > bits-2 {
			return fmt.Errorf("hostPrefix %d is too small, must be a /%d or larger", cn.HostPrefix, bits-2)
		}
		if err := add("ClusterNetwork CIDR "+cn.CIDR, p.Masked()); err != nil {
			return err
		}
	}
	if v4Cluster != v4Service || v6Cluster != v6Service {
		return fmt.Errorf("spec.clusterNetwork and spec.serviceNetwork must either both be IPv4-only, both be IPv6-only, or both be dual-stack")
	}
	if s.NetworkType == "" {
		return fmt.Errorf("spec.networkType is required")
	}
	if s.NetworkType == "OVNKubernetes" && v6Cluster {
		for name, cidr := range internal {
			ip, err := netip.ParsePrefix(cidr)
			if err != nil {
				return fmt.Errorf("%s %q is invalid: %v", name, cidr, err)
			}
			for _, q := range pool {
				if q.p.Addr().Is6() && q.p.Overlaps(ip) {
					return fmt.Errorf("%s %s overlaps with %s", name, cidr, q.what)
				}
			}
		}
	}
	return nil
}

// awsDay2RefusalSince is the first release whose operator refuses a day-2
// dual-stack conversion on AWS.
var awsDay2RefusalSince = version.MajorMinor(4, 11)

func conversionToDualStackSupported(platformType, release string) bool {
	switch platformType {
	case "BareMetal", "None", "VSphere":
		return true
	case "AWS":
		v, err := version.ParseGeneric(release)
		return err == nil && v.LessThan(awsDay2RefusalSince)
	default:
		return false
	}
}

// checkNetworkChange is the operator's check of a change against what is
// applied.
func checkNetworkChange(prev, next networkSpec, platformType, release string) error {
	if len(prev.ServiceNetwork) == 0 {
		return nil // nothing applied yet: an install
	}
	var single, dual networkSpec
	switch {
	case len(prev.ServiceNetwork) < len(next.ServiceNetwork):
		single, dual = prev, next
		if !conversionToDualStackSupported(platformType, release) {
			return fmt.Errorf("%s does not allow conversion to dual-stack cluster", platformType)
		}
	case len(prev.ServiceNetwork) > len(next.ServiceNetwork):
		dual, single = prev, next
	case !reflect.DeepEqual(prev.ServiceNetwork, next.ServiceNetwork):
		return fmt.Errorf("unsupported change to ServiceNetwork")
	default:
		if !reflect.DeepEqual(prev.ClusterNetwork, next.ClusterNetwork) {
			return fmt.Errorf("adding/removing clusterNetwork entries of the same type is not supported")
		}
		return nil
	}
	if single.ServiceNetwork[0] != dual.ServiceNetwork[0] {
		return fmt.Errorf("cannot change primary ServiceNetwork when migrating to/from dual-stack")
	}
	primary6 := strings.Contains(single.ClusterNetwork[0].CIDR, ":")
	for i, e := range dual.ClusterNetwork {
		if i < len(single.ClusterNetwork) {
			if single.ClusterNetwork[i] != e {
				return fmt.Errorf("cannot change primary ClusterNetwork when migrating to/from dual-stack")
			}
		} else if strings.Contains(e.CIDR, ":") == primary6 {
			return fmt.Errorf("cannot add additional ClusterNetwork values of original IP family when migrating to dual stack")
		}
	}
	return nil
}

// setConditions writes the network ClusterOperator's three conditions,
// keeping lastTransitionTime where a status did not change.
func (n *NetworkOperator) setConditions(ctx context.Context, available, progressing, degraded, reason, message string) error {
	co, err := n.dc.Resource(clusterOperatorGVR).Get(ctx, "network", metav1.GetOptions{})
	if err != nil {
		return err
	}
	old, _, _ := unstructured.NestedSlice(co.Object, "status", "conditions")
	prev := map[string]map[string]any{}
	for _, c := range old {
		if m, ok := c.(map[string]any); ok {
			t, _ := m["type"].(string)
			prev[t] = m
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var conds []any
	changed := false
	for _, c := range []struct{ t, status, reason, message string }{
		{"Available", available, "AsExpected", ""},
		{"Progressing", progressing, reason, message},
		{"Degraded", degraded, reason, message},
	} {
		if c.status == "False" && c.t != "Available" {
			c.reason, c.message = "AsExpected", ""
		}
		m := map[string]any{"type": c.t, "status": c.status, "reason": c.reason, "message": c.message, "lastTransitionTime": now}
		if p := prev[c.t]; p != nil {
			if p["status"] == c.status {
				m["lastTransitionTime"] = p["lastTransitionTime"]
			}
			if p["status"] != c.status || p["reason"] != c.reason || p["message"] != c.message {
				changed = true
			}
		} else {
			changed = true
		}
		conds = append(conds, m)
	}
	if !changed {
		return nil
	}
	if err := unstructured.SetNestedSlice(co.Object, conds, "status", "conditions"); err != nil {
		return err
	}
	_, err = n.dc.Resource(clusterOperatorGVR).UpdateStatus(ctx, co, metav1.UpdateOptions{})
	return err
}

// sleepCtx sleeps for d unless ctx ends first (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
