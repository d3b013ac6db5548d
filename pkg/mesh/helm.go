package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// OpHelmUpgrade is the journal operation of a Helm upgrade of istiod's
// release.
const OpHelmUpgrade = "helm-upgrade-istiod"

// HelmHistoryMax is how many revisions of a release the upgrade and the
// rollback keep, as `helm upgrade` and `helm rollback` do by default
// (--history-max 10).
const HelmHistoryMax = 10

// helmTimeout bounds Helm's own calls (it does not wait for the rollout:
// Apply does that on a watch).
const helmTimeout = 5 * time.Minute

// HelmConfigs gives the Helm SDK's configuration for the releases of a
// namespace. NewHelmConfigs builds it from kubectl's flags.
type HelmConfigs func(namespace string) (*action.Configuration, error)

// NewHelmConfigs reads and writes release records where the helm command
// would with the same kubeconfig: the storage driver in HELM_DRIVER
// (Secrets by default; configmap, memory and sql as helm has them). Helm's
// debug lines go to log (nil: dropped).
func NewHelmConfigs(getter genericclioptions.RESTClientGetter, log io.Writer) HelmConfigs {
	return func(namespace string) (*action.Configuration, error) {
		cfg := new(action.Configuration)
		debug := func(format string, v ...any) {
			if log != nil {
				fmt.Fprintf(log, "helm: "+format+"\n", v...)
			}
		}
		if err := cfg.Init(getter, namespace, os.Getenv("HELM_DRIVER"), debug); err != nil {
			return nil, fmt.Errorf("setting up Helm for namespace %s: %w", namespace, err)
		}
		return cfg, nil
	}
}

// HelmFor is NewHelmConfigs for a command's clients; nil (no Helm client)
// when they were not built from kubectl's flags.
func HelmFor(kc *kube.Clients) HelmConfigs {
	if kc == nil || kc.Getter == nil {
		return nil
	}
	return NewHelmConfigs(kc.Getter, nil)
}

// HelmPlan is istiod's Helm release and the values the upgrade sets on top
// of the release's own (as `helm upgrade --reuse-values --set ...` does,
// with the chart the release was installed with, so the Istio version
// does not move).
type HelmPlan struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"` // where the release records are
	// Revision is the deployed revision planned from; Apply refuses when
	// the release moved since.
	Revision     int    `json:"revision"`
	Chart        string `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	// Changes are the values set, each with what the release's values
	// (the chart's defaults and the user's) held.
	Changes []ValueChange `json:"changes"`
	// Service is what the new values do to istiod's Service (the chart
	// renders its ipFamilyPolicy and ipFamilies).
	Service *ServicePlan `json:"service,omitempty"`
}

// The leaves of the istiod chart's values this phase sets (the same
// values as the Sail operator's spec.values, without the "values" level).
var (
	helmEnvPath    = sailEnvPath[1:]
	helmProxyPath  = sailProxyPath[1:]
	helmPolicyPath = sailPolicyPath[1:]
	helmFamsPath   = sailFamsPath[1:]
)

// helmRelease is the release istiod's Deployment belongs to: Helm's
// annotations (release-name, release-namespace), else the chart's
// `release` label in the Deployment's namespace.
func helmRelease(dep *appsv1.Deployment) (name, namespace string) {
	name = dep.Annotations[istio.HelmReleaseAnnotation]
	if name == "" {
		name = dep.Labels["release"]
	}
	namespace = dep.Annotations["meta.helm.sh/release-namespace"]
	if namespace == "" {
		namespace = dep.Namespace
	}
	return name, namespace
}

// planHelm plans a Helm upgrade of istiod's release with the dual-stack
// values. Without a Helm client (c.Helm nil) it is blocked with the helm
// command that makes the change.
func (c *Converter) planHelm(p *Plan, dep *appsv1.Deployment, f *istio.Facts, svc *corev1.Service) error {
	name, ns := helmRelease(dep)
	fams := targetFamilies(svc)
	p.HelmCommand = helmCommand(name, ns, p.Version, c.Options.Policy, fams)
	if name == "" {
		p.Blocker = fmt.Sprintf("istiod %s/%s is managed by Helm, but neither its %s annotation nor its release label names the release: run %s", dep.Namespace, dep.Name, istio.HelmReleaseAnnotation, p.HelmCommand)
		return nil
	}
	if c.Helm == nil {
		if f.IstiodDualStack && f.ProxyDualStack && (svc == nil || serviceDual(svc)) {
			return nil
		}
		p.Blocker = "istiod was installed with Helm (release " + name + "), and this run has no Helm client: run " + p.HelmCommand + " then run this phase again"
		return nil
	}
	cfg, err := c.Helm(ns)
	if err != nil {
		return err
	}
	rel, err := cfg.Releases.Last(name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound):
		p.Blocker = fmt.Sprintf("istiod names the Helm release %s, but %s has no record of it (HELM_DRIVER=%q): was it installed with another storage driver? Run %s", name, ns, os.Getenv("HELM_DRIVER"), p.HelmCommand)
		return nil
	case err != nil:
		return fmt.Errorf("reading the Helm release %s/%s: %w", ns, name, err)
	}
	hp := &HelmPlan{Release: name, Namespace: ns, Revision: rel.Version}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		hp.Chart, hp.ChartVersion = rel.Chart.Metadata.Name, rel.Chart.Metadata.Version
	}
	p.Helm = hp
	if st := rel.Info.Status; st != release.StatusDeployed {
		p.Blocker = fmt.Sprintf("the Helm release %s/%s is %s at revision %d, not deployed: finish or roll back that operation with helm first (`helm history %s -n %s`)", ns, name, st, rel.Version, name, ns)
		return nil
	}
	if rel.Chart == nil {
		p.Blocker = fmt.Sprintf("the Helm release %s/%s revision %d has no chart in its record: run %s", ns, name, rel.Version, p.HelmCommand)
		return nil
	}
	effective, err := chartutil.CoalesceValues(rel.Chart, rel.Config)
	if err != nil {
		return fmt.Errorf("reading the values of the Helm release %s/%s: %w", ns, name, err)
	}
	vals := map[string]any(effective)
	want := []setting{{helmEnvPath, "true", isTrueString}, {helmProxyPath, "true", isTrueString}}
	policy, _ := leaf(vals, helmPolicyPath)
	if s, _ := policy.(string); !dualPolicy(s) {
		want = append(want,
			setting{helmPolicyPath, string(c.Options.Policy), func(any) bool { return false }},
			setting{helmFamsPath, []any{string(fams[0]), string(fams[1])}, func(any) bool { return false }})
		if svc != nil && !serviceDual(svc) {
			hp.Service = c.servicePlan(svc)
		}
	}
	for _, w := range want {
		cur, present := leaf(vals, w.path)
		if present && w.done(cur) {
			continue
		}
		target, _ := json.Marshal(w.value)
		vc := ValueChange{Path: w.path, Present: present && cur != nil, Target: string(target)}
		if vc.Present {
			b, _ := json.Marshal(cur)
			vc.Original = string(b)
		}
		hp.Changes = append(hp.Changes, vc)
	}
	if len(hp.Changes) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("the change is a Helm upgrade of the release %s/%s from revision %d, with its own chart (%s %s) and values plus the dual-stack values, as `%s` does: the next `helm upgrade --reuse-values` keeps them, and rollback is a Helm rollback to revision %d", ns, name, rel.Version, hp.Chart, hp.ChartVersion, p.HelmCommand, rel.Version))
	}
	return nil
}

// setting is one leaf a plan sets, and when its current value already does.
type setting struct {
	path  []string
	value any
	done  func(any) bool
}

// helmCommand is the helm command line that makes the same change.
func helmCommand(release, namespace, version string, policy corev1.IPFamilyPolicy, fams []corev1.IPFamily) string {
	if release == "" {
		release = "<release>"
	}
	args := []string{"helm", "upgrade", release, "istio/istiod", "-n", namespace, "--reuse-values"}
	if version != "" {
		// Without it helm takes the newest chart: an Istio upgrade.
		args = append(args, "--version", version)
	}
	args = append(args,
		"--set-string", "pilot.env."+istio.DualStackEnv+"=true",
		"--set-string", "meshConfig.defaultConfig.proxyMetadata."+istio.DualStackEnv+"=true",
		"--set", "pilot.ipFamilyPolicy="+string(policy),
		"--set", fmt.Sprintf("'pilot.ipFamilies={%s,%s}'", fams[0], fams[1]))
	return strings.Join(args, " ")
}

// helmValues are the values the upgrade passes (on top of the release's
// own, reused).
func helmValues(hp *HelmPlan) map[string]any {
	out := map[string]any{}
	for _, ch := range hp.Changes {
		var v any
		_ = json.Unmarshal([]byte(ch.Target), &v)
		setPath(out, ch.Path, v)
	}
	return out
}

func helmEntryID(hp *HelmPlan) string {
	return Layer + "/" + OpHelmUpgrade + "/" + hp.Namespace + "/" + hp.Release
}

// applyHelm upgrades the release with the dual-stack values on top of its
// own, journalled first. A release that moved since the plan is refused
// (ErrChanged); one whose newest revision is this tool's upgrade already
// (a re-run) counts as done.
func (c *Converter) applyHelm(ctx context.Context, hp *HelmPlan) (bool, error) {
	if c.Helm == nil {
		return false, errors.New("applying the mesh phase of a Helm install needs the Helm client")
	}
	cfg, err := c.Helm(hp.Namespace)
	if err != nil {
		return false, err
	}
	ref := fmt.Sprintf("helm release %s/%s", hp.Namespace, hp.Release)
	set := helmValues(hp)
	from, err := cfg.Releases.Get(hp.Release, hp.Revision)
	if err != nil {
		return false, fmt.Errorf("reading %s revision %d: %w", ref, hp.Revision, err)
	}
	want := chartutil.CoalesceTables(copyValues(set), copyValues(from.Config))
	last, err := cfg.Releases.Last(hp.Release)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ref, err)
	}
	if last.Version != hp.Revision {
		if last.Version == hp.Revision+1 && last.Info.Status == release.StatusDeployed && sameValues(last.Config, want) {
			return false, nil // this tool's upgrade, from a run that stopped after it
		}
		return false, fmt.Errorf("%s is at revision %d (%s), planned from revision %d: %w", ref, last.Version, last.Info.Status, hp.Revision, ErrChanged)
	}
	setJSON, _ := json.Marshal(set)
	e := journal.Entry{ID: helmEntryID(hp), Layer: Layer, Operation: OpHelmUpgrade, Resource: ref, State: journal.Pending,
		Undo: map[string]string{"namespace": hp.Namespace, "release": hp.Release, "fromRevision": strconv.Itoa(hp.Revision),
			"set": string(setJSON), "chart": hp.Chart + "-" + hp.ChartVersion}}
	if err := c.record(ctx, false, e); err != nil {
		return false, fmt.Errorf("journalling %s before its upgrade (nothing was changed): %w", ref, err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace, up.ReuseValues, up.MaxHistory, up.Timeout = hp.Namespace, true, HelmHistoryMax, helmTimeout
	c.logf("mesh: helm upgrade %s in %s from revision %d with %s (values reused)\n", hp.Release, hp.Namespace, hp.Revision, setJSON)
	rel, err := up.RunWithContext(ctx, hp.Release, last.Chart, set)
	if err != nil {
		// Helm records a failed revision when it got as far as the
		// cluster: the entry stays pending, and rollback looks at the
		// release itself.
		return false, fmt.Errorf("helm upgrade of %s: %w", ref, err)
	}
	e.Undo["toRevision"] = strconv.Itoa(rel.Version)
	return true, c.done(ctx, e, ref)
}

// copyValues is a deep copy (CoalesceTables changes its arguments).
func copyValues(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// sameValues compares two values trees as JSON would see them.
func sameValues(a, b map[string]any) bool {
	return reflect.DeepEqual(copyValues(a), copyValues(b))
}

// undoHelm rolls the release back to the revision before this tool's
// upgrade (`helm rollback <release> <revision>`: a new revision with that
// revision's chart and values), when the newest revision is still the
// tool's upgrade; one made since by someone else is left alone.
func undoHelm(ctx context.Context, configs HelmConfigs, e journal.Entry) (bool, string, error) {
	u := e.Undo
	ns, name := u["namespace"], u["release"]
	ref := fmt.Sprintf("helm release %s/%s", ns, name)
	if configs == nil {
		return false, "", fmt.Errorf("rolling back %s needs the Helm client", ref)
	}
	from, err := strconv.Atoi(u["fromRevision"])
	if err != nil {
		return false, "", fmt.Errorf("the journal entry of %s has no revision to go back to: %q", ref, u["fromRevision"])
	}
	cfg, err := configs(ns)
	if err != nil {
		return false, "", err
	}
	last, err := cfg.Releases.Last(name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound):
		return false, ref + " no longer exists (uninstalled?); left alone", nil
	case err != nil:
		return false, "", fmt.Errorf("reading %s: %w", ref, err)
	}
	if last.Version == from {
		return false, "already as before (the upgrade did not happen)", nil
	}
	orig, err := cfg.Releases.Get(name, from)
	if err != nil {
		return false, "", fmt.Errorf("reading %s revision %d: %w (it may have been pruned from the history)", ref, from, err)
	}
	var set map[string]any
	_ = json.Unmarshal([]byte(u["set"]), &set)
	want := chartutil.CoalesceTables(set, copyValues(orig.Config))
	ours := last.Version == from+1 && sameValues(last.Config, want)
	if to := u["toRevision"]; to != "" && to != strconv.Itoa(last.Version) {
		ours = false
	}
	if !ours {
		return false, fmt.Sprintf("%s is at revision %d, upgraded since this tool's change; left alone (`helm rollback %s %d -n %s` goes back to the values before it)", ref, last.Version, name, from, ns), nil
	}
	if st := last.Info.Status; st.IsPending() {
		return false, "", fmt.Errorf("%s revision %d is %s: another Helm operation runs; run rollback again when it is done", ref, last.Version, st)
	}
	rb := action.NewRollback(cfg)
	rb.Version, rb.MaxHistory, rb.Timeout = from, HelmHistoryMax, helmTimeout
	if err := rb.Run(name); err != nil {
		return false, "", fmt.Errorf("helm rollback of %s to revision %d: %w", ref, from, err)
	}
	now, err := cfg.Releases.Last(name)
	if err != nil {
		return true, fmt.Sprintf("rolled back to revision %d's chart and values", from), nil
	}
	return true, fmt.Sprintf("rolled back to revision %d's chart and values (revision %d)", from, now.Version), nil
}
