package nodes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// ErrChanged is a cloud config that changed since it was planned: Apply
// does not overwrite it; plan again.
var ErrChanged = cmtext.ErrChanged

// Result is what Apply did.
type Result struct {
	// Changed says the cloud config was written; Already that it already
	// held the planned text (a re-run).
	Changed bool `json:"changed"`
	Already bool `json:"already,omitempty"`
	// ResourceVersion is the ConfigMap's after the update.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Restarted is the CCM workload restarted, if any.
	Restarted *Workload `json:"restarted,omitempty"`
	Message   string    `json:"message"`
}

// entryID is stable for a cloud config, so a re-run finds its own entry.
func entryID(r ConfigMapRef) string {
	return Layer + "/" + OpUpdateCloudConfig + "/" + r.Namespace + "/" + r.Name + "/" + r.Key
}

func restartID(w Workload) string {
	return Layer + "/" + OpRestartCCM + "/" + w.Kind + "/" + w.Namespace + "/" + w.Name
}

// Apply writes exactly the plan's new cloud config text, and restarts the
// CCM workload the plan names. The original text is journalled in full
// (pending) before the update, which carries the plan's resourceVersion:
// a ConfigMap changed since the plan is refused by the apiserver (or seen
// here first) and Apply returns ErrChanged, leaving it as it is. A
// ConfigMap that already holds the planned text counts as done. Apply
// does not wait for the nodes: Wait does.
func (c *Converter) Apply(ctx context.Context, plan *Plan) (*Result, error) {
	if plan.Blocker != "" {
		return nil, fmt.Errorf("not applied: %s", plan.Blocker)
	}
	cp := plan.Cloud
	if cp == nil || !cp.Change {
		return &Result{Message: "the cloud config needs no change"}, nil
	}
	if c.Journal == nil {
		return nil, errors.New("applying the nodes phase needs the journal")
	}
	res := &Result{}
	already, rv, err := cmtext.Write(ctx, c.Kube, c.Journal, cp.edit(), cloudConfigEntry(cp))
	switch {
	case err != nil && rv != "":
		return &Result{Changed: true, ResourceVersion: rv}, err
	case err != nil:
		return nil, err
	case already:
		res.Already, res.Message = true, fmt.Sprintf("%s already lists NodeIPFamilies %s", cp.ConfigMapRef, strings.Join(cp.Target, ","))
	default:
		res.Changed, res.ResourceVersion = true, rv
		res.Message = fmt.Sprintf("%s now lists NodeIPFamilies %s", cp.ConfigMapRef, strings.Join(cp.Target, ","))
	}
	if plan.Restart != nil {
		if err := c.restart(ctx, *plan.Restart, true); err != nil {
			return res, err
		}
		res.Restarted = plan.Restart
		res.Message += "; restarted " + plan.Restart.String() + " so it reads it"
	} else if plan.OpenShift {
		res.Message += "; OpenShift's operators copy it to " + OpenShiftCCMNamespace + "/" + OpenShiftCCMConfigMap + " and roll the cloud controller"
	}
	return res, nil
}

// edit is the planned update as package cmtext writes it.
func (cp *CloudConfigPlan) edit() cmtext.Edit {
	return cmtext.Edit{Namespace: cp.Namespace, Name: cp.Name, Key: cp.Key, UID: cp.UID, ResourceVersion: cp.ResourceVersion,
		KeyPresent: cp.KeyPresent, Original: cp.Original, New: cp.New}
}

// cloudConfigEntry is the journal entry of the planned update: the whole
// original text, and what is written.
func cloudConfigEntry(cp *CloudConfigPlan) journal.Entry {
	return cp.edit().Entry(entryID(cp.ConfigMapRef), Layer, OpUpdateCloudConfig)
}

// restart rolls a workload as `kubectl rollout restart` does: a new
// restartedAt annotation on its pod template. With record, the restart is
// journalled first (rollback restarts it again once the config is back).
func (c *Converter) restart(ctx context.Context, w Workload, record bool) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	var entry journal.Entry
	if record {
		entry = journal.Entry{ID: restartID(w), Layer: Layer, Operation: OpRestartCCM,
			Resource: strings.ToLower(w.Kind) + "/" + w.Namespace + "/" + w.Name, State: journal.Pending,
			Undo: map[string]string{"kind": w.Kind, "namespace": w.Namespace, "name": w.Name}}
		if err := c.Journal.PutAll(ctx, []journal.Entry{entry}); err != nil {
			return fmt.Errorf("recording the restart of %s in the journal: %w", w, err)
		}
	}
	if err := restartWorkload(ctx, c.Kube.AppsV1(), w, now()); err != nil {
		return err
	}
	if record {
		entry.State = journal.Done
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := c.Journal.PutAll(wctx, []journal.Entry{entry}); err != nil {
			return fmt.Errorf("restarted %s but could not record it in the journal: %w", w, err)
		}
	}
	return nil
}

// restartWorkload restarts the cloud controller's workload.
func restartWorkload(ctx context.Context, apps appsv1client.AppsV1Interface, w Workload, at time.Time) error {
	if err := kube.RolloutRestart(ctx, apps, w.Kind, w.Namespace, w.Name, at); err != nil {
		return kube.Explain("restarting the cloud controller "+w.String(), err)
	}
	return nil
}

// WaitResult is what Wait saw at the end.
type WaitResult struct {
	Nodes []NodeView `json:"nodes"`
	Done  int        `json:"done"`
	Total int        `json:"total"`
}

// Pending are the nodes that are not done.
func (r *WaitResult) Pending() []NodeView {
	var out []NodeView
	for _, n := range r.Nodes {
		if !n.Done {
			out = append(out, n)
		}
	}
	return out
}

// Wait follows the Nodes (one list, then a watch) until every node has an
// IPv4 and an IPv6 InternalIP (the ENI's, when known), telling Progress
// "n of N nodes have IPv6" as they come. After the options' Timeout it
// returns the nodes that lag, each with the likely cause, and an error
// wrapping *kube.TimeoutError.
func (c *Converter) Wait(ctx context.Context, plan *Plan) (*WaitResult, error) {
	timeout := c.Options.Timeout
	if timeout <= 0 {
		timeout = defaultWaitTimeout
	}
	var last map[string]runtime.Object
	lastMsg := ""
	err := kube.WaitAll(ctx, kube.NodesLW(c.Kube), &corev1.Node{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		last = objs
		nodes := kube.Nodes(objs)
		done := 0
		for _, n := range nodes {
			if nodeDone(n, c.Options.ENIIPv6[n.Name], c.Options.ENIIPv6 != nil) {
				done++
			}
		}
		if msg := fmt.Sprintf("%d of %d nodes have IPv6", done, len(nodes)); msg != lastMsg && c.Progress != nil {
			c.Progress(msg)
			lastMsg = msg
		}
		return done == len(nodes), nil
	})
	res := &WaitResult{}
	for _, n := range kube.Nodes(last) {
		v := c.view(n, plan)
		res.Nodes = append(res.Nodes, v)
		if v.Done {
			res.Done++
		}
	}
	slices.SortFunc(res.Nodes, func(a, b NodeView) int { return strings.Compare(a.Name, b.Name) })
	res.Total = len(res.Nodes)
	if err == nil {
		return res, nil
	}
	var te *kube.TimeoutError
	if !errors.As(err, &te) {
		return res, fmt.Errorf("waiting for the nodes' IPv6 InternalIPs: %w", err)
	}
	downstream := c.downstreamFamilies(ctx, plan)
	var names []string
	for i := range res.Nodes {
		n := &res.Nodes[i]
		if n.Done {
			continue
		}
		n.Cause = c.cause(*n, plan, downstream)
		names = append(names, n.Name+": "+n.Cause)
	}
	const show = 5
	if len(names) > show {
		names = append(names[:show], fmt.Sprintf("and %d more", len(names)-show))
	}
	return res, fmt.Errorf("%d of %d nodes have no IPv6 InternalIP after %s (%s): %w", res.Total-res.Done, res.Total, timeout, strings.Join(names, "; "), err)
}

// downstream is what the CCM's own copy of the config says, on OpenShift.
type downstream struct {
	read     bool
	families []string
	err      string
}

func (c *Converter) downstreamFamilies(ctx context.Context, plan *Plan) downstream {
	if plan.Cloud == nil || plan.Cloud.Downstream == nil {
		return downstream{}
	}
	r := *plan.Cloud.Downstream
	cm, err := c.Kube.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return downstream{err: err.Error()}
	}
	f, err := Families(cm.Data[r.Key])
	if err != nil {
		return downstream{read: true, err: err.Error()}
	}
	return downstream{read: true, families: f}
}

// cause is the likeliest reason a node has no (or not its ENI's) IPv6
// InternalIP, most specific first.
func (c *Converter) cause(n NodeView, plan *Plan, ds downstream) string {
	eniKnown := c.Options.ENIIPv6 != nil
	_, listed := c.Options.ENIIPv6[n.Name]
	switch {
	case len(n.IPv4) == 0:
		return "it has no IPv4 InternalIP either: the cloud controller has not initialised it (is the node Ready?)"
	case eniKnown && listed && len(n.ENIIPv6) == 0:
		return "its primary ENI has no IPv6 address: the AWS underlay (aws apply) assigns one; a node the underlay did not cover (a new instance, another subnet) needs it too"
	case eniKnown && len(n.IPv6) > 0:
		return fmt.Sprintf("it reports the IPv6 InternalIP %s, but its primary ENI has %s", strings.Join(n.IPv6, ","), strings.Join(n.ENIIPv6, ","))
	case n.HostChange != "":
		return n.HostChange
	}
	ccm := "the cloud controller"
	if plan.CCM != nil {
		ccm = plan.CCM.String()
	}
	if plan.OpenShift {
		if ds.read && slices.Contains(ds.families, "ipv4,ipv6") {
			return fmt.Sprintf("the cloud controller's copy %s/%s has NodeIPFamilies flattened to \"ipv4,ipv6\", which cloud-provider-aws ignores: the cluster-cloud-controller-manager-operator of OpenShift 4.20 and 4.21 writes it so (fixed in 4.22, CORS-4209); upgrade, or ask Red Hat support", OpenShiftCCMNamespace, OpenShiftCCMConfigMap)
		}
		if ds.read && !slices.Contains(ds.families, FamilyIPv6) {
			return fmt.Sprintf("the cloud controller's copy %s/%s [%s] does not list ipv6 yet: the cluster-config-operator (openshift-config-managed/kube-cloud-config) and the cluster-cloud-controller-manager-operator copy it from %s; check `oc get co config-operator cloud-controller-manager`",
				OpenShiftCCMNamespace, OpenShiftCCMConfigMap, OpenShiftCCMKey, plan.Cloud.ConfigMapRef)
		}
		return fmt.Sprintf("the cloud controller has not re-synced the node (%s): its operator rolls it when its config changes; if it did not, `oc -n %s delete pod -l k8s-app=%s`",
			nodeStatusPeriodNote, OpenShiftCCMNamespace, OpenShiftCCMWorkload)
	}
	restart := "restart cloud-provider-aws (it reads its config only at start)"
	if plan.CCM != nil {
		restart = fmt.Sprintf("`kubectl -n %s rollout restart %s/%s`", plan.CCM.Namespace, strings.ToLower(plan.CCM.Kind), plan.CCM.Name)
	}
	if !eniKnown {
		return fmt.Sprintf("its ENI may have no IPv6 address (not known here: check with aws discover), or %s has not re-synced it (%s): %s", ccm, nodeStatusPeriodNote, restart)
	}
	return fmt.Sprintf("%s has not re-synced it (%s): %s", ccm, nodeStatusPeriodNote, restart)
}
