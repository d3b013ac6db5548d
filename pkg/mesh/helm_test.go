package mesh

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// helmWorld is Helm's own SDK on its in-memory release storage (the
// driver `HELM_DRIVER=memory` uses) with Helm's fake cluster client:
// upgrades and rollbacks really run through action.Upgrade and
// action.Rollback, and write real revisions.
type helmWorld struct {
	cfg *action.Configuration
}

func newHelmWorld(t *testing.T, userValues map[string]any) *helmWorld {
	t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	ch := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "istiod", Version: "1.24.2", AppVersion: "1.24.2"},
		Values: map[string]any{
			"pilot":      map[string]any{"env": map[string]any{}, "ipFamilyPolicy": "", "ipFamilies": []any{}, "replicaCount": 1},
			"meshConfig": map[string]any{"defaultConfig": map[string]any{"discoveryAddress": "istiod.istio-system.svc:15012"}},
		},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\ndata:\n  mesh: |-\n{{ toYaml .Values.meshConfig | indent 4 }}\n")}},
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = "istiod", "istio-system"
	if _, err := in.Run(ch, userValues); err != nil {
		t.Fatal(err)
	}
	return &helmWorld{cfg: cfg}
}

func (h *helmWorld) configs(string) (*action.Configuration, error) { return h.cfg, nil }

func (h *helmWorld) last(t *testing.T) *release.Release {
	t.Helper()
	r, err := h.cfg.Releases.Last("istiod")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (h *helmWorld) config(t *testing.T, rev int) map[string]any {
	t.Helper()
	r, err := h.cfg.Releases.Get("istiod", rev)
	if err != nil {
		t.Fatal(err)
	}
	return r.Config
}

func helmConverter(t *testing.T, h *helmWorld, env ...corev1.EnvVar) (*Converter, *fakeAPI) {
	t.Helper()
	dep := istiodDeployment(map[string]string{"operator.istio.io/component": "Pilot", "release": "istiod", "app.kubernetes.io/managed-by": "Helm"},
		map[string]string{istio.HelmReleaseAnnotation: "istiod", "meta.helm.sh/release-namespace": "istio-system"}, env...)
	f := newFakeAPI(t, dep, meshConfigMap(istioctlMesh), istiodService(false))
	c := converter(f, nil)
	c.Helm = h.configs
	return c, f
}

var userValues = map[string]any{"pilot": map[string]any{"replicaCount": 2, "env": map[string]any{"PILOT_TRACE_SAMPLING": "5"}}}

// TestHelmUpgradeAndRollback: the plan names the release, its revision and
// the values; the upgrade is a new revision whose values are the old ones
// plus the dual-stack values (the user's own kept, as --reuse-values
// does) with the same chart; rollback is a new revision with exactly the
// old values again; a second rollback finds nothing to do.
func TestHelmUpgradeAndRollback(t *testing.T) {
	ctx := context.Background()
	h := newHelmWorld(t, userValues)
	c, f := helmConverter(t, h)
	p := plan(t, c)
	if p.Action != ActionChange || p.Helm == nil || p.Helm.Release != "istiod" || p.Helm.Revision != 1 || p.Helm.ChartVersion != "1.24.2" {
		t.Fatalf("plan: %+v helm %+v", p, p.Helm)
	}
	var paths []string
	for _, ch := range p.Helm.Changes {
		paths = append(paths, strings.Join(ch.Path, ".")+"="+ch.Target)
	}
	want := []string{`pilot.env.ISTIO_DUAL_STACK="true"`, `meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK="true"`, `pilot.ipFamilyPolicy="PreferDualStack"`, `pilot.ipFamilies=["IPv4","IPv6"]`}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("values set: %v\nwant %v", paths, want)
	}
	if sp := p.ServiceChange(); sp == nil || sp.Name != "istiod" || sp.TargetPolicy != corev1.IPFamilyPolicyPreferDualStack {
		t.Errorf("the Service the chart re-renders: %+v", sp)
	}
	if p.Env != nil || p.MeshConfig != nil || p.Service != nil {
		t.Errorf("a Helm plan must not change istiod's objects behind the release: %+v", p)
	}
	before := copyValues(h.config(t, 1))

	changed, err := c.applyHelm(ctx, p.Helm)
	if err != nil || !changed {
		t.Fatalf("applyHelm: %v %v", changed, err)
	}
	up := h.last(t)
	if up.Version != 2 || up.Info.Status != release.StatusDeployed || up.Chart.Metadata.Version != "1.24.2" {
		t.Fatalf("after the upgrade: revision %d %s chart %s", up.Version, up.Info.Status, up.Chart.Metadata.Version)
	}
	pilot, _ := up.Config["pilot"].(map[string]any)
	envs, _ := pilot["env"].(map[string]any)
	if envs["ISTIO_DUAL_STACK"] != "true" || envs["PILOT_TRACE_SAMPLING"] != "5" || pilot["replicaCount"] == nil || pilot["ipFamilyPolicy"] != "PreferDualStack" {
		t.Errorf("revision 2's values (the user's must stay): %v", up.Config)
	}
	if !reflect.DeepEqual(copyValues(h.config(t, 1)), before) {
		t.Errorf("revision 1's values changed: %v", h.config(t, 1))
	}
	if f.writeCount() != 0 {
		t.Errorf("istiod's objects were written directly: %v", f.writes)
	}
	j, _ := c.Journal.Load(ctx)
	es := Undoable(j)
	if len(es) != 1 || es[0].Operation != OpHelmUpgrade || es[0].State != journal.Done || es[0].Undo["fromRevision"] != "1" || es[0].Undo["toRevision"] != "2" {
		t.Fatalf("journal: %+v", es)
	}

	// A re-run of the same plan finds its own upgrade.
	if changed, err := c.applyHelm(ctx, p.Helm); err != nil || changed {
		t.Errorf("re-run: %v %v", changed, err)
	}
	if h.last(t).Version != 2 {
		t.Errorf("the re-run upgraded again: revision %d", h.last(t).Version)
	}

	res, err := Rollback(ctx, f, f.dyn, h.configs, c.Journal)
	if err != nil || len(res) != 1 || res[0].Status != "undone" {
		t.Fatalf("rollback: %v %+v", err, res)
	}
	back := h.last(t)
	if back.Version != 3 || !reflect.DeepEqual(copyValues(back.Config), before) {
		t.Errorf("after rollback: revision %d values %v, want revision 3 with %v", back.Version, back.Config, before)
	}
	if again, err := Rollback(ctx, f, f.dyn, h.configs, c.Journal); err != nil || len(again) != 0 {
		t.Errorf("second rollback: %v %+v", err, again)
	}
}

// TestHelmReleaseMovedSincePlan: an upgrade by someone else between plan
// and apply is not overwritten, and nothing is journalled.
func TestHelmReleaseMovedSincePlan(t *testing.T) {
	ctx := context.Background()
	h := newHelmWorld(t, nil)
	c, _ := helmConverter(t, h)
	p := plan(t, c)
	cur := h.last(t)
	other := action.NewUpgrade(h.cfg)
	other.ReuseValues = true
	if _, err := other.Run("istiod", cur.Chart, map[string]any{"pilot": map[string]any{"replicaCount": 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.applyHelm(ctx, p.Helm); !errors.Is(err, ErrChanged) {
		t.Fatalf("apply after someone's upgrade: %v", err)
	}
	if h.last(t).Version != 2 {
		t.Errorf("revision %d", h.last(t).Version)
	}
	j, _ := c.Journal.Load(ctx)
	if len(Undoable(j)) != 0 {
		t.Errorf("journalled: %+v", Undoable(j))
	}
}

// TestHelmRollbackLeavesALaterUpgrade: when someone upgraded the release
// after this tool did, rollback leaves it and says how to go back.
func TestHelmRollbackLeavesALaterUpgrade(t *testing.T) {
	ctx := context.Background()
	h := newHelmWorld(t, nil)
	c, f := helmConverter(t, h)
	p := plan(t, c)
	if _, err := c.applyHelm(ctx, p.Helm); err != nil {
		t.Fatal(err)
	}
	other := action.NewUpgrade(h.cfg)
	other.ReuseValues = true
	if _, err := other.Run("istiod", h.last(t).Chart, map[string]any{"pilot": map[string]any{"replicaCount": 3}}); err != nil {
		t.Fatal(err)
	}
	res, err := Rollback(ctx, f, f.dyn, h.configs, c.Journal)
	if err != nil || len(res) != 1 || res[0].Status != "skipped" || !strings.Contains(res[0].Message, "helm rollback istiod 1 -n istio-system") {
		t.Fatalf("rollback: %v %+v", err, res)
	}
	if h.last(t).Version != 3 {
		t.Errorf("the later upgrade was rolled back: revision %d", h.last(t).Version)
	}
}

// TestHelmPlanBlockers: a release in the middle of another operation, or
// with no record where helm keeps them, is not touched; one that already
// has the values (and istiod with them) has nothing to do.
func TestHelmPlanBlockers(t *testing.T) {
	h := newHelmWorld(t, nil)
	r := h.last(t)
	r.Info.Status = release.StatusPendingUpgrade
	if err := h.cfg.Releases.Update(r); err != nil {
		t.Fatal(err)
	}
	c, _ := helmConverter(t, h)
	if p := plan(t, c); p.Action != ActionBlocked || !strings.Contains(p.Blocker, "pending-upgrade at revision 1") {
		t.Errorf("pending release: %+v", p)
	}

	empty := &helmWorld{cfg: &action.Configuration{Releases: storage.Init(driver.NewMemory()), KubeClient: &kubefake.PrintingKubeClient{Out: io.Discard}, Log: func(string, ...any) {}}}
	c, _ = helmConverter(t, empty)
	if p := plan(t, c); p.Action != ActionBlocked || !strings.Contains(p.Blocker, "has no record of it") || !strings.Contains(p.Blocker, "helm upgrade istiod") {
		t.Errorf("no release record: %+v", p)
	}

	dual := map[string]any{
		"pilot":      map[string]any{"env": map[string]any{"ISTIO_DUAL_STACK": "true"}, "ipFamilyPolicy": "PreferDualStack", "ipFamilies": []any{"IPv4", "IPv6"}},
		"meshConfig": map[string]any{"defaultConfig": map[string]any{"proxyMetadata": map[string]any{"ISTIO_DUAL_STACK": "true"}}},
	}
	h = newHelmWorld(t, dual)
	c, _ = helmConverter(t, h, corev1.EnvVar{Name: istio.DualStackEnv, Value: "true"})
	if p := plan(t, c); p.Action != ActionNothing || len(p.Helm.Changes) != 0 {
		t.Errorf("already dual-stack values: %+v %+v", p, p.Helm)
	}
}
