package network

// kubeadm: what the network phase changes in the API (kubeadm's
// ClusterConfiguration and kube-proxy's config, so that the next `kubeadm
// upgrade` and `kubeadm join` render the same flags the admin puts on the
// hosts, and kube-proxy learns the IPv6 pod range), and the wait for the
// host-side changes to show in the API.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// KubeadmLayer is the journal layer of the kubeadm ConfigMap edits.
const KubeadmLayer = "overlay-kubeadm"

// OpUpdateConfigMap is the journal operation of one ConfigMap key edit.
const OpUpdateConfigMap = "update-configmap"

// The ConfigMaps kubeadm keeps in kube-system, and their keys.
const (
	KubeadmConfigMap   = "kubeadm-config"
	KubeadmConfigKey   = "ClusterConfiguration"
	KubeProxyConfigMap = "kube-proxy"
	KubeProxyConfigKey = "config.conf"
	kubeSystem         = "kube-system"
)

// pollEvery is how often the wait looks at the nodes and asks the
// apiserver for an IPv6 Service address.
var pollEvery = 2 * time.Second

func kubeadmEntryID(e cmtext.Edit) string {
	return KubeadmLayer + "/" + e.Namespace + "/" + e.Name + "/" + e.Key
}

// scalarLine matches "<indent>key: value  # comment" with the value plain,
// single- or double-quoted.
func scalarLine(key string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^([ \t]*` + regexp.QuoteMeta(key) + `:[ \t]*)("[^"\n]*"|'[^'\n]*'|[^ \t#\n][^#\n]*?|)([ \t]*(?:#[^\n]*)?)\r?$`)
}

// editScalar sets the one line holding key to value, keeping its
// indentation, quotes and comment and every other byte; path is where the
// key is in the YAML, to check the result by parsing it. More or fewer
// than one such line is an error: the text is then edited by hand.
func editScalar(text, key string, path []string, value string) (string, error) {
	re := scalarLine(key)
	locs := re.FindAllStringSubmatchIndex(text, -1)
	if len(locs) != 1 {
		return "", fmt.Errorf("found %d lines setting %s, not one", len(locs), key)
	}
	l := locs[0]
	old := text[l[4]:l[5]]
	quoted := value
	switch {
	case strings.HasPrefix(old, `"`):
		quoted = `"` + value + `"`
	case strings.HasPrefix(old, `'`):
		quoted = `'` + value + `'`
	}
	out := text[:l[4]] + quoted + text[l[5]:]
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte(out), &parsed); err != nil {
		return "", fmt.Errorf("the edited text does not parse: %w", err)
	}
	var cur any = parsed
	for _, k := range path {
		m, _ := cur.(map[string]any)
		cur = m[k]
	}
	if s, _ := cur.(string); s != value {
		return "", fmt.Errorf("after the edit %s reads %v, not %s", strings.Join(path, "."), cur, value)
	}
	return out, nil
}

// kubeadmEdits turns the plan's kubeadm-config and kube-proxy changes into
// ConfigMap edits (one per ConfigMap key), and marks those changes InAPI.
func kubeadmEdits(ctx context.Context, o *Overlay, p *Plan) ([]cmtext.Edit, error) {
	type field struct {
		key   string
		path  []string
		value string
	}
	byMap := map[string][]field{}
	var order []string
	for i, c := range p.Changes {
		var cm string
		var f field
		switch {
		case c.Component == "kubeadm-config" && c.Setting == "networking.podSubnet":
			cm, f = KubeadmConfigMap, field{"podSubnet", []string{"networking", "podSubnet"}, c.Desired}
		case c.Component == "kubeadm-config" && c.Setting == "networking.serviceSubnet":
			cm, f = KubeadmConfigMap, field{"serviceSubnet", []string{"networking", "serviceSubnet"}, c.Desired}
		case c.Component == "kube-proxy" && c.Setting == "clusterCIDR":
			cm, f = KubeProxyConfigMap, field{"clusterCIDR", []string{"clusterCIDR"}, c.Desired}
		default:
			continue
		}
		p.Changes[i].InAPI = true
		if _, ok := byMap[cm]; !ok {
			order = append(order, cm)
		}
		byMap[cm] = append(byMap[cm], f)
	}
	var edits []cmtext.Edit
	for _, name := range order {
		key := KubeadmConfigKey
		if name == KubeProxyConfigMap {
			key = KubeProxyConfigKey
		}
		cm, err := o.Kube.CoreV1().ConfigMaps(kubeSystem).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, kube.Explain("reading "+kubeSystem+"/"+name, err)
		}
		text, present := cm.Data[key]
		e := cmtext.Edit{Namespace: kubeSystem, Name: name, Key: key, UID: cm.UID, ResourceVersion: cm.ResourceVersion,
			KeyPresent: present, Original: text, New: text}
		for _, f := range byMap[name] {
			if e.New, err = editScalar(e.New, f.key, f.path, f.value); err != nil {
				return nil, fmt.Errorf("%s cannot be edited safely (%v): set %s to %s by hand, then run this again", e.Ref(), err, strings.Join(f.path, "."), f.value)
			}
		}
		edits = append(edits, e)
	}
	return edits, nil
}

// planKubeadm reads the control plane and plans; nil plan when it is
// already dual-stack (res says so).
func (o *Overlay) planKubeadm(ctx context.Context, res *Result, nodes []corev1.Node) (*Plan, error) {
	flags, err := ReadClusterFlags(ctx, o.Kube)
	if err != nil {
		return nil, kube.Explain("reading the control-plane configuration", err)
	}
	if flags.DualStack() {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = "nothing to do: the control plane already runs with IPv4 and IPv6 ranges"
		return nil, nil
	}
	if err := o.Request.CheckNodeMask(); err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	reserved := append(flags.Reserved(), ReservedFromAddresses("IPv6 InternalIP of a node:", NodeIPv6Addresses(nodes))...)
	if err := o.Request.CheckReserved(reserved); err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	plan := KubeadmPlan(res.Cluster.Kind, flags, o.Request, nodes)
	entry := o.Request.ClusterEntry()
	res.Plan = &plan
	res.Added = &Added{ClusterNetwork: &entry, ServiceNetwork: o.Request.ServiceNetwork.String()}
	if res.Cluster.Kind == platform.Kubeadm {
		if plan.Edits, err = kubeadmEdits(ctx, o, &plan); err != nil {
			return nil, err
		}
		if len(plan.Edits) > 0 {
			plan.Notes = append([]string{fmt.Sprintf("with --yes this tool updates %s (the changes marked inAPI; journalled, `%s` restores them), then waits for the host-side changes to show in the API and restarts kube-proxy", editNames(plan.Edits), o.command("network --revert --yes"))}, plan.Notes...)
		}
	}
	return &plan, nil
}

// HostChanges are the plan's changes the admin makes on the hosts.
func (p *Plan) HostChanges() []Change {
	var out []Change
	for _, c := range p.Changes {
		if !c.InAPI {
			out = append(out, c)
		}
	}
	return out
}

// ConvertKubeadm makes the kubeadm cluster's network dual-stack as far as
// the API holds it: kubeadm-config's podSubnet and serviceSubnet and
// kube-proxy's clusterCIDR, each journalled (layer overlay-kubeadm) and
// written with the resourceVersion read. Then it lists the host-side
// changes (static pod flags, kubelet --node-ip) and waits, up to Timeout,
// until the API shows them: every node with an IPv4 and an IPv6
// InternalIP, and the apiserver giving a Service both families (a
// server-side dry run). Then it restarts kube-proxy (a DaemonSet rollout
// restart) so it reads its new config. kind cannot be changed in place:
// there it only plans.
func (o *Overlay) ConvertKubeadm(ctx context.Context, res *Result, nodes []corev1.Node) error {
	plan, err := o.planKubeadm(ctx, res, nodes)
	if err != nil {
		return o.report(res, err)
	}
	if res.Cluster.Kind != platform.Kubeadm || o.DryRun != cli.DryRunNone {
		if plan == nil {
			return o.report(res, nil)
		}
		res.Action, res.Outcome = "plan", OutcomePlanned
		res.Message = fmt.Sprintf("%d changes planned; nothing was changed", len(plan.Changes))
		if len(plan.Edits) > 0 {
			res.Message += fmt.Sprintf(" (with --yes: %d in the API by this tool, then a wait for the %d on the hosts)", len(plan.Changes)-len(plan.HostChanges()), len(plan.HostChanges()))
		}
		return o.report(res, nil)
	}
	if o.ExpectEdits != nil {
		var now []cmtext.Edit
		if plan != nil {
			now = plan.Edits
		}
		if d := editsDiff(*o.ExpectEdits, now); d != "" {
			res.Outcome, res.Message = OutcomeConflict, "nothing was changed: the ConfigMaps changed since the plan was confirmed ("+d+"); plan again"
			return o.report(res, errors.New(res.Message))
		}
	}
	var edits []cmtext.Edit
	if plan != nil {
		edits = plan.Edits
		if err := o.writeKubeadmEdits(ctx, res, plan); err != nil {
			return o.report(res, err)
		}
	}
	// Verified, not assumed: even when every flag the API shows is
	// dual-stack, the nodes and the apiserver must show it too.
	missing, err := o.waitHostSide(ctx)
	if err != nil {
		if missing != "" {
			res.Outcome = OutcomeTimedOut
			res.Message = fmt.Sprintf("after %s the API still shows %s: make the host-side changes of the plan, then run `%s` again to wait", o.Timeout, missing, o.command("network --yes"))
			if len(edits) > 0 {
				res.Message = fmt.Sprintf("updated %s in the API (journalled: `%s` restores them); ", editNames(edits), o.command("network --revert --yes")) + res.Message
			}
			return o.report(res, errors.New(res.Message))
		}
		return o.report(res, err)
	}
	msg := "the nodes report IPv4 and IPv6 InternalIPs and the apiserver gives Services both families"
	restarted, err := o.restartKubeProxyOnce(ctx)
	if err != nil {
		res.Message = msg + "; " + err.Error()
		return o.report(res, err)
	}
	if restarted {
		msg += "; restarted kube-system/kube-proxy so it reads the IPv6 pod range"
	}
	if plan == nil && !restarted {
		res.Message += "; " + msg
		return o.report(res, nil)
	}
	res.Outcome, res.Message = OutcomeConverted, msg
	o.findIPv4OnlyPods(ctx, res)
	return o.report(res, nil)
}

// writeKubeadmEdits asks, then writes the plan's ConfigMap edits and lists
// the host-side changes.
func (o *Overlay) writeKubeadmEdits(ctx context.Context, res *Result, plan *Plan) error {
	if len(plan.Edits) > 0 {
		if err := o.Confirm(ctx, o.command("network"), fmt.Sprintf("Update %s in the API, then wait for the host-side changes?", editNames(plan.Edits))); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = OutcomeNotConfirmed, "nothing was changed"
			}
			return err
		}
	}
	var written []string
	for _, e := range plan.Edits {
		already, _, err := cmtext.Write(ctx, o.Kube, o.Journal, e, e.Entry(kubeadmEntryID(e), KubeadmLayer, OpUpdateConfigMap))
		if err != nil {
			if errors.Is(err, cmtext.ErrChanged) {
				res.Outcome = OutcomeConflict
			}
			res.Message = fmt.Sprintf("%v; updated before it: %s", err, orNothing(written))
			return errors.New(res.Message)
		}
		if !already {
			written = append(written, e.Ref())
		}
	}
	if len(written) > 0 {
		fmt.Fprintf(o.Log, "Updated %s (the originals are in the journal %s).\n", strings.Join(written, ", "), o.Journal.Location())
	}
	if hosts := plan.HostChanges(); len(hosts) > 0 {
		fmt.Fprintf(o.Log, "Now make these changes on the hosts; this command waits up to %s for the API to show them:\n", o.Timeout)
		for _, c := range hosts {
			fmt.Fprintf(o.Log, "  %s: %s %s -> %s  (%s)\n", c.Component, c.Setting, dashIfEmpty(c.Current), c.Desired, c.Where)
		}
	}
	return nil
}

// editsDiff says how two plans' ConfigMap edits differ ("" when they
// write the same texts over the same originals).
func editsDiff(was, now []cmtext.Edit) string {
	key := func(es []cmtext.Edit) map[string]string {
		m := map[string]string{}
		for _, e := range es {
			m[e.Ref()] = e.Original + "\x00" + e.New
		}
		return m
	}
	a, b := key(was), key(now)
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k)
		}
	}
	slices.Sort(d)
	return strings.Join(d, ", ")
}

func editNames(edits []cmtext.Edit) string {
	var out []string
	for _, e := range edits {
		out = append(out, e.Ref())
	}
	return strings.Join(out, ", ")
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// waitHostSide waits until every node reports both InternalIP families
// and the apiserver allocates IPv6 Service addresses; missing says what
// the API did not show yet when it gave up.
func (o *Overlay) waitHostSide(ctx context.Context) (missing string, err error) {
	last := ""
	err = wait.PollUntilContextTimeout(ctx, pollEvery, o.Timeout, true, func(ctx context.Context) (bool, error) {
		var parts []string
		nodes, err := kube.ListNodes(ctx, o.Kube, metav1.ListOptions{})
		if err != nil {
			return false, kube.Explain("listing nodes", err)
		}
		var lacking []string
		for _, n := range nodes {
			if !HasFamily(internalIPs(&n), "IPv4") || !HasFamily(internalIPs(&n), "IPv6") {
				lacking = append(lacking, n.Name)
			}
		}
		if len(lacking) > 0 {
			slices.Sort(lacking)
			parts = append(parts, fmt.Sprintf("%d of %d nodes without both InternalIP families (%s: kubelet --node-ip)", len(lacking), len(nodes), strings.Join(lacking, ", ")))
		}
		ok, why, err := o.serviceIPv6(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			parts = append(parts, "no IPv6 Service address from the apiserver ("+why+": kube-apiserver --service-cluster-ip-range)")
		}
		missing = strings.Join(parts, "; ")
		if missing != last {
			if missing != "" {
				fmt.Fprintf(o.Log, "network: waiting for the host-side changes: %s\n", missing)
			}
			last = missing
		}
		return missing == "", nil
	})
	if err != nil && missing == "" && ctx.Err() == nil && !wait.Interrupted(err) {
		return "", err
	}
	if err != nil && missing == "" {
		missing = "the host-side changes (interrupted)"
	}
	return missing, err
}

func internalIPs(n *corev1.Node) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out = append(out, a.Address)
		}
	}
	return out
}

// serviceIPv6 asks the apiserver, with a server-side dry run of a
// RequireDualStack Service, whether it gives Services an IPv6 address.
func (o *Overlay) serviceIPv6(ctx context.Context) (bool, string, error) {
	require := corev1.IPFamilyPolicyRequireDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dualstack-family-probe", Namespace: kubeSystem},
		Spec: corev1.ServiceSpec{IPFamilyPolicy: &require, Ports: []corev1.ServicePort{{Port: 80}},
			Selector: map[string]string{"app.kubernetes.io/name": "dualstack-family-probe"}},
	}
	got, err := o.Kube.CoreV1().Services(kubeSystem).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case apierrors.IsInvalid(err):
		return false, "it refuses RequireDualStack", nil
	case apierrors.IsAlreadyExists(err):
		return false, "", fmt.Errorf("a Service kube-system/dualstack-family-probe exists: this tool's dry-run probe of the Service families needs that name free")
	case err != nil:
		return false, "", kube.Explain("asking the apiserver for a dual-stack Service (server-side dry run)", err)
	}
	if len(got.Spec.ClusterIPs) < 2 {
		return false, "it gave one family", nil
	}
	return true, "", nil
}

// OpRestartKubeProxy is the journal operation of kube-proxy's restart
// after its config was changed.
const OpRestartKubeProxy = "restart-kube-proxy"

const restartKubeProxyID = KubeadmLayer + "/" + OpRestartKubeProxy

// restartKubeProxy rolls the kube-proxy DaemonSet, as `kubectl rollout
// restart` does; false when there is none.
func (o *Overlay) restartKubeProxy(ctx context.Context) (bool, error) {
	err := kube.RolloutRestart(ctx, o.Kube.AppsV1(), "DaemonSet", kubeSystem, KubeProxyConfigMap, time.Now())
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, kube.Explain("restarting kube-system/kube-proxy", err)
	}
	return true, nil
}

// restartKubeProxyOnce restarts kube-proxy once after this tool changed
// its config (this run or an earlier one the journal records), and
// journals that it did; false when nothing needs it.
func (o *Overlay) restartKubeProxyOnce(ctx context.Context) (bool, error) {
	j, err := o.Journal.Load(ctx)
	if err != nil {
		return false, kube.Explain("reading the journal", err)
	}
	changed := false
	for _, e := range j.Layer(KubeadmLayer) {
		changed = changed || (e.Operation == OpUpdateConfigMap && e.Undo["name"] == KubeProxyConfigMap && e.State == journal.Done)
	}
	if e, ok := j.Get(restartKubeProxyID); !changed || (ok && e.State == journal.Done) {
		return false, nil
	}
	restarted, err := o.restartKubeProxy(ctx)
	if err != nil {
		return false, err
	}
	e := journal.Entry{ID: restartKubeProxyID, Layer: KubeadmLayer, Operation: OpRestartKubeProxy, Resource: "daemonset/kube-system/kube-proxy",
		State: journal.Done, Undo: map[string]string{"restarted": fmt.Sprint(restarted)}}
	if err := o.Journal.PutAll(context.WithoutCancel(ctx), []journal.Entry{e}); err != nil {
		return restarted, fmt.Errorf("restarted kube-proxy but could not record it in the journal: %w", err)
	}
	return restarted, nil
}

// RevertKubeadm gives kubeadm-config and kube-proxy their original text
// back, byte for byte, where they still hold what this tool wrote, then
// restarts kube-proxy. The host-side changes are the admin's to take back.
func (o *Overlay) RevertKubeadm(ctx context.Context, res *Result) error {
	j, err := o.Journal.Load(ctx)
	if err != nil {
		return o.report(res, kube.Explain("reading the journal", err))
	}
	var entries []journal.Entry
	var restarts []journal.Entry
	for _, e := range j.Undoable(KubeadmLayer) {
		switch {
		case e.Operation == OpRestartKubeProxy:
			restarts = append(restarts, e)
		default:
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		res.Outcome = OutcomeNothingToRevert
		res.Message = fmt.Sprintf("nothing to revert: the journal %s records no kubeadm ConfigMap this command changed", o.Journal.Location())
		return o.report(res, nil)
	}
	if o.DryRun == cli.DryRunClient {
		res.Outcome, res.Message = OutcomeDryRun, fmt.Sprintf("dry run (client): would restore %d ConfigMap keys from the journal", len(entries))
		return o.report(res, nil)
	}
	if err := o.Confirm(ctx, o.command("network --revert"), fmt.Sprintf("Restore %d ConfigMap keys from the journal?", len(entries))); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			res.Outcome, res.Message = OutcomeNotConfirmed, "nothing was changed"
			_ = o.report(res, nil)
		}
		return err
	}
	var done, left, failed []string
	for _, e := range entries {
		undone, msg, err := cmtext.Restore(ctx, o.Kube, e)
		switch {
		case err != nil:
			failed = append(failed, e.Resource+": "+err.Error())
			continue
		case undone:
			done = append(done, e.Resource)
		default:
			left = append(left, e.Resource+": "+msg)
		}
		e.State = journal.Undone
		if err := o.Journal.PutAll(context.WithoutCancel(ctx), []journal.Entry{e}); err != nil {
			failed = append(failed, e.Resource+": restored but not recorded in the journal: "+err.Error())
		}
	}
	msg := "restored " + orNothing(done)
	if len(left) > 0 {
		msg += "; left alone " + strings.Join(left, "; ")
	}
	if len(done) > 0 {
		if restarted, err := o.restartKubeProxy(ctx); err != nil {
			failed = append(failed, err.Error())
		} else if restarted {
			msg += "; restarted kube-system/kube-proxy"
		}
	}
	for _, e := range restarts {
		e.State = journal.Undone
		if err := o.Journal.PutAll(context.WithoutCancel(ctx), []journal.Entry{e}); err != nil {
			failed = append(failed, e.Resource+": not recorded in the journal: "+err.Error())
		}
	}
	msg += "; the control-plane flags and kubelet --node-ip on the hosts are yours to take back (this tool does not edit the hosts)"
	res.Message = msg
	if len(failed) > 0 {
		res.Outcome = OutcomeConflict
		res.Message = strings.Join(failed, "; ") + "; " + msg
		return o.report(res, errors.New(res.Message))
	}
	res.Outcome = OutcomeReverted
	return o.report(res, nil)
}
