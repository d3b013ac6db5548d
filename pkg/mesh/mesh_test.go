package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

const (
	istioctlMesh = "# istioctl\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  proxyMetadata: {}\n  tracing: {}\nenablePrometheusMerge: true\nrootNamespace: istio-system\ntrustDomain: cluster.local\n"
	// istioctlMeshOn is istioctlMesh with the one change, every other byte kept.
	istioctlMeshOn = "# istioctl\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n  tracing: {}\nenablePrometheusMerge: true\nrootNamespace: istio-system\ntrustDomain: cluster.local\n"
)

func converter(f *fakeAPI, log *bytes.Buffer) *Converter {
	c := &Converter{Kube: f, Dynamic: f.dyn, Journal: journal.NewStore(f, "", ""), Options: Options{Timeout: 5 * time.Second}}
	if log != nil {
		c.Log = log
	}
	return c
}

// plan makes a plan and passes it through JSON, as the engine saves it.
func plan(t *testing.T, c *Converter) *Plan {
	t.Helper()
	p, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if p.MeshConfig != nil && (back.MeshConfig.Original != p.MeshConfig.Original || back.MeshConfig.New != p.MeshConfig.New) {
		t.Fatal("the plan's texts did not survive JSON")
	}
	return &back
}

func istioctlWorld(t *testing.T) *fakeAPI {
	return newFakeAPI(t, istiodDeployment(istioctlLabels, nil), meshConfigMap(istioctlMesh), istiodService(false))
}

func TestPlanIstioctl(t *testing.T) {
	f := istioctlWorld(t)
	p := plan(t, converter(f, nil))
	if p.Action != ActionChange || p.Method != istio.MethodIstioctl || p.Blocker != "" || p.Sail != nil {
		t.Fatalf("plan: %+v", p)
	}
	if e := p.Env; e == nil || !e.Change || e.Present || e.Container != "discovery" || e.Deployment != "istiod" || e.ResourceVersion == "" {
		t.Errorf("env: %+v", p.Env)
	}
	if m := p.MeshConfig; m == nil || !m.Change || m.Name != "istio" || m.Original != istioctlMesh || m.New != istioctlMeshOn || m.Edit != EditTextual {
		t.Errorf("mesh config: %+v", p.MeshConfig)
	}
	if s := p.Service; s == nil || !s.Change || s.TargetPolicy != corev1.IPFamilyPolicyPreferDualStack ||
		!slices.Equal(s.TargetFamilies, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}) {
		t.Errorf("service: %+v", p.Service)
	}
	flags := strings.Join(p.IstioctlFlags, " ")
	for _, want := range []string{"--set values.pilot.env.ISTIO_DUAL_STACK=true", `--set meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK="true"`, "--set values.pilot.ipFamilyPolicy=PreferDualStack"} {
		if !strings.Contains(flags, want) {
			t.Errorf("istioctl flags %q lack %q", flags, want)
		}
	}
	notes := strings.Join(p.Notes, "\n")
	if !strings.Contains(notes, "istioctl install") || !strings.Contains(notes, NoteProxies) {
		t.Errorf("notes: %s", notes)
	}
	if f.writeCount() != 0 {
		t.Errorf("Plan wrote: %v", f.writes)
	}
}

func TestPlanNothing(t *testing.T) {
	on := corev1.EnvVar{Name: istio.DualStackEnv, Value: "true"}
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want string
	}{
		{"no istio", nil, "no istiod"},
		{"already dual-stack", []runtime.Object{istiodDeployment(istioctlLabels, nil, on), meshConfigMap(istioctlMeshOn), istiodService(true)}, "already has ISTIO_DUAL_STACK=true"},
		{"helm, already dual-stack", []runtime.Object{istiodDeployment(nil, map[string]string{istio.HelmReleaseAnnotation: "istiod"}, on), meshConfigMap(istioctlMeshOn), istiodService(true)}, "already has"},
		{"sail, already dual-stack", []runtime.Object{istiodDeployment(map[string]string{"app.kubernetes.io/managed-by": "sail-operator"}, nil, on), sailIstio(map[string]any{
			"pilot":      map[string]any{"env": map[string]any{istio.DualStackEnv: "true"}, "ipFamilyPolicy": "RequireDualStack"},
			"meshConfig": map[string]any{"defaultConfig": map[string]any{"proxyMetadata": map[string]any{istio.DualStackEnv: "true"}}}})}, "already has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.objs...)
			c := converter(f, nil)
			p := plan(t, c)
			if p.Action != ActionNothing || !strings.Contains(p.Summary, tc.want) || p.Blocker != "" {
				t.Fatalf("plan: %+v", p)
			}
			res, err := c.Apply(context.Background(), p)
			if err != nil || len(res.Changed) != 0 || f.writeCount() != 0 {
				t.Fatalf("apply of nothing: %+v, %v, writes %v", res, err, f.writes)
			}
		})
	}
}

func TestPlanHelmBlocked(t *testing.T) {
	dep := istiodDeployment(map[string]string{"operator.istio.io/component": "Pilot", "install.operator.istio.io/owning-resource": "unknown", "release": "istiod"},
		map[string]string{istio.HelmReleaseAnnotation: "istio-cp", "meta.helm.sh/release-namespace": "istio-system"})
	f := newFakeAPI(t, dep, meshConfigMap(istioctlMesh), istiodService(false))
	c := converter(f, nil)
	p := plan(t, c)
	if p.Action != ActionBlocked || p.Method != istio.MethodHelm {
		t.Fatalf("plan: %+v", p)
	}
	want := "helm upgrade istio-cp istio/istiod -n istio-system --reuse-values --version 1.24.2 --set-string pilot.env.ISTIO_DUAL_STACK=true --set-string meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK=true --set pilot.ipFamilyPolicy=PreferDualStack --set 'pilot.ipFamilies={IPv4,IPv6}'"
	if p.HelmCommand != want || !strings.Contains(p.Blocker, want) {
		t.Errorf("helm command:\n%s\nwant\n%s\nblocker: %s", p.HelmCommand, want, p.Blocker)
	}
	if p.Env != nil || p.MeshConfig != nil || p.Service != nil {
		t.Errorf("a Helm plan names direct changes: %+v", p)
	}
	if _, err := c.Apply(context.Background(), p); err == nil || !strings.Contains(err.Error(), "not applied") {
		t.Errorf("apply of a blocked plan: %v", err)
	}
	if f.writeCount() != 0 {
		t.Errorf("writes: %v", f.writes)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Policy: "SingleStack"}, {Policy: "Dual"}, {Timeout: -time.Second}} {
		c := &Converter{Kube: newFakeAPI(t), Options: o}
		_, err := c.Plan(context.Background())
		if cli.ExitCode(err) != cli.ExitBadUsage {
			t.Errorf("%+v: %v", o, err)
		}
	}
	o := Options{}
	if err := o.Validate(); err != nil || o.Policy != corev1.IPFamilyPolicyPreferDualStack {
		t.Errorf("defaults: %+v %v", o, err)
	}
}

func run(t *testing.T, f *fakeAPI, sail bool) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { f.controller(t, sail, stop); close(done) }()
	return func() { close(stop); <-done }
}

func getDeployment(t *testing.T, f *fakeAPI) *appsv1.Deployment {
	t.Helper()
	d, err := f.AppsV1().Deployments("istio-system").Get(context.Background(), "istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func getMesh(t *testing.T, f *fakeAPI) string {
	t.Helper()
	cm, err := f.CoreV1().ConfigMaps("istio-system").Get(context.Background(), "istio", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[MeshKey]
}

func getService(t *testing.T, f *fakeAPI) *corev1.Service {
	t.Helper()
	s, err := f.CoreV1().Services("istio-system").Get(context.Background(), "istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyManifestsThenRollback(t *testing.T) {
	ctx := context.Background()
	f := istioctlWorld(t)
	var log bytes.Buffer
	c := converter(f, &log)
	p := plan(t, c)
	stop := run(t, f, false)
	res, err := c.Apply(ctx, p)
	stop()
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, log.String())
	}
	if len(res.Changed) != 3 || !res.RolledOut {
		t.Errorf("result: %+v", res)
	}
	d := getDeployment(t, f)
	env := d.Spec.Template.Spec.Containers[0].Env
	if e := findEnv(env); len(env) != 2 || e == nil || *e != (corev1.EnvVar{Name: istio.DualStackEnv, Value: "true"}) ||
		!slices.Contains(env, corev1.EnvVar{Name: "PILOT_ENABLE_ANALYSIS", Value: "false"}) {
		t.Errorf("env: %+v", env)
	}
	if d.Generation != 2 || d.Status.ObservedGeneration != 2 {
		t.Errorf("the rollout waited for was not the new generation: %d / %d", d.Generation, d.Status.ObservedGeneration)
	}
	if got := getMesh(t, f); got != istioctlMeshOn {
		t.Errorf("mesh config:\n%s\nwant\n%s", got, istioctlMeshOn)
	}
	svc := getService(t, f)
	if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack || len(svc.Spec.IPFamilies) != 2 || svc.Spec.ClusterIPs[0] != "10.96.0.20" {
		t.Errorf("service: %+v", svc.Spec)
	}
	for _, want := range []string{"waiting up to 5s for istiod istio-system/istiod to roll out", "1 of 1 replicas updated, 1 available"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	j, err := c.Journal.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range j.Layer(Layer) {
		ids = append(ids, e.ID+" "+string(e.State))
	}
	wantIDs := []string{
		"mesh/patch-istiod-service/istio-system/istiod done",
		"mesh/update-mesh-config/istio-system/istio/mesh done",
		"mesh/patch-istiod-env/istio-system/istiod/discovery done",
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("journal: %q", ids)
	}
	if e, _ := j.Get(wantIDs[1][:len(wantIDs[1])-5]); e.Undo["original"] != istioctlMesh {
		t.Errorf("the journal's original text: %q", e.Undo["original"])
	}

	// A re-plan has nothing to do; applying the old plan again changes nothing.
	if p2 := plan(t, c); p2.Action != ActionNothing {
		t.Errorf("re-plan: %+v", p2)
	}
	writes := f.writeCount()
	stop = run(t, f, false)
	res, err = c.Apply(ctx, p)
	stop()
	if err != nil || len(res.Changed) != 0 || len(res.Already) != 3 || f.writeCount() != writes {
		t.Errorf("re-apply: %+v %v, writes %v", res, err, f.writes[writes:])
	}

	results, err := Rollback(ctx, f, f.dyn, nil, c.Journal)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Status != "undone" {
			t.Errorf("rollback: %+v", r)
		}
	}
	if len(results) != 3 {
		t.Errorf("rollback results: %+v", results)
	}
	if got := getMesh(t, f); got != istioctlMesh {
		t.Errorf("mesh config not restored byte for byte: %q", got)
	}
	env = getDeployment(t, f).Spec.Template.Spec.Containers[0].Env
	if len(env) != 1 || env[0].Name != "PILOT_ENABLE_ANALYSIS" {
		t.Errorf("env after rollback: %+v", env)
	}
	svc = getService(t, f)
	if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || !slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) ||
		!slices.Equal(svc.Spec.ClusterIPs, []string{"10.96.0.20"}) {
		t.Errorf("service after rollback: %+v", svc.Spec)
	}
	if again, err := Rollback(ctx, f, f.dyn, nil, c.Journal); err != nil || len(again) != 0 {
		t.Errorf("second rollback: %+v %v", again, err)
	}
}

// An env variable the user had (false) is given back, not removed.
func TestRollbackRestoresOriginalEnv(t *testing.T) {
	ctx := context.Background()
	f := newFakeAPI(t, istiodDeployment(istioctlLabels, nil, corev1.EnvVar{Name: istio.DualStackEnv, Value: "false"}),
		meshConfigMap(istioctlMeshOn), istiodService(true))
	c := converter(f, nil)
	p := plan(t, c)
	if p.Env == nil || !p.Env.Change || !p.Env.Present || p.Env.OriginalValue != "false" || p.MeshConfig.Change || p.Service.Change {
		t.Fatalf("plan: %+v %+v", p.Env, p)
	}
	stop := run(t, f, false)
	_, err := c.Apply(ctx, p)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if env := getDeployment(t, f).Spec.Template.Spec.Containers[0].Env; len(env) != 2 || findEnv(env).Value != "true" {
		t.Fatalf("env: %+v", env)
	}
	if _, err := Rollback(ctx, f, f.dyn, nil, c.Journal); err != nil {
		t.Fatal(err)
	}
	if env := getDeployment(t, f).Spec.Template.Spec.Containers[0].Env; len(env) != 2 || *findEnv(env) != (corev1.EnvVar{Name: istio.DualStackEnv, Value: "false"}) {
		t.Errorf("env after rollback: %+v", env)
	}
}

func TestApplyRefusesConcurrentChange(t *testing.T) {
	ctx := context.Background()
	other := "defaultConfig:\n  holdApplicationUntilProxyStarts: true\n"
	editMesh := func(o runtime.Object) { o.(*corev1.ConfigMap).Data[MeshKey] = other }

	t.Run("changed before apply", func(t *testing.T) {
		f := istioctlWorld(t)
		c := converter(f, nil)
		p := plan(t, c)
		f.set(t, corev1.SchemeGroupVersion.WithResource("configmaps"), "istio-system", "istio", editMesh)
		_, err := c.Apply(ctx, p)
		if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "service istio-system/istiod") {
			t.Fatalf("apply: %v", err)
		}
		if got := getMesh(t, f); got != other {
			t.Errorf("someone's mesh config was overwritten: %q", got)
		}
		if d := getDeployment(t, f); findEnv(d.Spec.Template.Spec.Containers[0].Env) != nil {
			t.Error("the env was changed after the refusal")
		}
	})

	t.Run("changed between read and write: refused by its resourceVersion", func(t *testing.T) {
		f := istioctlWorld(t)
		c := converter(f, nil)
		p := plan(t, c)
		f.beforeWrite = func(resource, ns, name string) {
			if resource != "services" {
				t.Errorf("first write: %s %s/%s", resource, ns, name)
				return
			}
			o, _ := f.Tracker().Get(corev1.SchemeGroupVersion.WithResource("services"), ns, name)
			s := o.DeepCopyObject().(*corev1.Service)
			s.Labels["team"] = "mesh"
			s.ResourceVersion = f.bump()
			_ = f.Tracker().Update(corev1.SchemeGroupVersion.WithResource("services"), s, ns)
		}
		_, err := c.Apply(ctx, p)
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("apply: %v", err)
		}
		if s := getService(t, f); *s.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || s.Labels["team"] != "mesh" {
			t.Errorf("service: %+v", s)
		}
		if f.writeCount() != 0 || getMesh(t, f) != istioctlMesh {
			t.Errorf("writes after the refusal: %v", f.writes)
		}
		j, _ := c.Journal.Load(ctx)
		if e, ok := j.Get("mesh/patch-istiod-service/istio-system/istiod"); !ok || e.State != journal.Failed {
			t.Errorf("journal entry: %+v", e)
		}
		if len(Undoable(j)) != 0 {
			t.Errorf("a refused change is undoable: %+v", Undoable(j))
		}
	})
}

func TestRollbackLeavesWhatChangedSince(t *testing.T) {
	ctx := context.Background()
	f := istioctlWorld(t)
	c := converter(f, nil)
	p := plan(t, c)
	stop := run(t, f, false)
	_, err := c.Apply(ctx, p)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	someone := istioctlMeshOn + "enableTracing: true\n"
	f.set(t, corev1.SchemeGroupVersion.WithResource("configmaps"), "istio-system", "istio", func(o runtime.Object) {
		o.(*corev1.ConfigMap).Data[MeshKey] = someone
	})
	f.set(t, deploymentsGVR, "istio-system", "istiod", func(o runtime.Object) {
		d := o.(*appsv1.Deployment)
		findEnv(d.Spec.Template.Spec.Containers[0].Env).Value = "1"
	})
	results, err := Rollback(ctx, f, f.dyn, nil, c.Journal)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range results {
		status[r.Operation] = r.Status
		if r.Status == "skipped" && !strings.Contains(r.Message, "left alone") {
			t.Errorf("%s: %s", r.Resource, r.Message)
		}
	}
	if status[OpUpdateMeshConfig] != "skipped" || status[OpPatchIstiodEnv] != "skipped" || status[OpPatchService] != "undone" {
		t.Errorf("rollback: %+v", results)
	}
	if got := getMesh(t, f); got != someone {
		t.Errorf("someone's mesh config was overwritten: %q", got)
	}
	if e := findEnv(getDeployment(t, f).Spec.Template.Spec.Containers[0].Env); e == nil || e.Value != "1" {
		t.Errorf("someone's env was overwritten: %+v", e)
	}
}

func sailWorld(t *testing.T, values map[string]any) *fakeAPI {
	return newFakeAPI(t, istiodDeployment(map[string]string{"app.kubernetes.io/managed-by": "sail-operator"}, nil),
		meshConfigMap(istioctlMesh), istiodService(false), sailIstio(values))
}

func sailSpec(t *testing.T, f *fakeAPI) map[string]any {
	t.Helper()
	u, err := f.dyn.Resource(istio.SailIstioGVR).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	return spec
}

func TestSailApplyThenRollback(t *testing.T) {
	ctx := context.Background()
	values := map[string]any{
		"pilot":      map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "100m"}}},
		"meshConfig": map[string]any{"accessLogFile": "/dev/stdout"},
	}
	f := sailWorld(t, values)
	before := sailSpec(t, f)
	var log bytes.Buffer
	c := converter(f, &log)
	p := plan(t, c)
	if p.Action != ActionChange || p.Method != istio.MethodSail || p.Sail == nil || p.Env != nil || p.MeshConfig != nil || p.Service != nil {
		t.Fatalf("plan: %+v", p)
	}
	var paths []string
	for _, ch := range p.Sail.Changes {
		paths = append(paths, strings.Join(ch.Path, ".")+"="+ch.Target)
		if ch.Present {
			t.Errorf("%v was not there", ch.Path)
		}
	}
	wantPaths := []string{
		`values.pilot.env.ISTIO_DUAL_STACK="true"`,
		`values.meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK="true"`,
		`values.pilot.ipFamilyPolicy="PreferDualStack"`,
		`values.pilot.ipFamilies=["IPv4","IPv6"]`,
	}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("changes: %q", paths)
	}
	if f.writeCount() != 0 {
		t.Errorf("Plan wrote: %v", f.writes)
	}

	stop := run(t, f, true)
	res, err := c.Apply(ctx, p)
	stop()
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, log.String())
	}
	if !res.RolledOut || !slices.Equal(res.Changed, []string{"istio default"}) {
		t.Errorf("result: %+v", res)
	}
	spec := sailSpec(t, f)
	for _, ch := range p.Sail.Changes {
		if v, ok := leaf(spec, ch.Path); !ok || !jsonEqual(mustJSON(t, v), ch.Target) {
			t.Errorf("%v = %v", ch.Path, v)
		}
	}
	if v, _ := leaf(spec, []string{"values", "pilot", "resources", "requests", "cpu"}); v != "100m" {
		t.Errorf("the other values were not kept: %v", spec)
	}
	if got := getMesh(t, f); got != istioctlMesh {
		t.Error("the mesh ConfigMap of a Sail install was changed behind the operator's back")
	}

	results, err := Rollback(ctx, f, f.dyn, nil, c.Journal)
	if err != nil || len(results) != 1 || results[0].Status != "undone" {
		t.Fatalf("rollback: %+v %v", results, err)
	}
	if after := sailSpec(t, f); !reflect.DeepEqual(after, before) {
		t.Errorf("spec after rollback:\n%v\nwant\n%v", after, before)
	}
}

// Keys the tool changed get their value back; keys it added are removed,
// but a map it created in which someone put something else stays.
func TestSailRollbackKeepsOthersKeys(t *testing.T) {
	ctx := context.Background()
	f := sailWorld(t, map[string]any{"pilot": map[string]any{"ipFamilyPolicy": "SingleStack", "env": map[string]any{istio.DualStackEnv: "false"}}})
	c := converter(f, nil)
	p := plan(t, c)
	stop := run(t, f, true)
	_, err := c.Apply(ctx, p)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	f.set(t, istio.SailIstioGVR, "", "default", func(o runtime.Object) {
		u := o.(*unstructured.Unstructured)
		_ = unstructured.SetNestedField(u.Object, "true", "spec", "values", "meshConfig", "defaultConfig", "proxyMetadata", "ISTIO_META_DNS_CAPTURE")
	})
	if _, err := Rollback(ctx, f, f.dyn, nil, c.Journal); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"pilot":      map[string]any{"ipFamilyPolicy": "SingleStack", "env": map[string]any{istio.DualStackEnv: "false"}},
		"meshConfig": map[string]any{"defaultConfig": map[string]any{"proxyMetadata": map[string]any{"ISTIO_META_DNS_CAPTURE": "true"}}},
	}
	if got := sailSpec(t, f)["values"]; !reflect.DeepEqual(got, want) {
		t.Errorf("values after rollback:\n%v\nwant\n%v", got, want)
	}
}

func TestSailRolloutTimeout(t *testing.T) {
	ctx := context.Background()
	f := sailWorld(t, nil)
	c := converter(f, nil)
	c.Options.Timeout = 300 * time.Millisecond
	p := plan(t, c)
	if len(p.Sail.Created) == 0 || p.Sail.Created[0][0] != "values" {
		t.Errorf("created maps: %v", p.Sail.Created)
	}
	// No operator renders the env: istiod's Deployment stays rolled out
	// (its status is done) without it, which is not enough.
	_, err := c.Apply(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "Sail operator") || !strings.Contains(err.Error(), "last: waiting for ISTIO_DUAL_STACK=true in its env") || !strings.Contains(err.Error(), `journalled in layer "mesh"`) || !strings.Contains(err.Error(), "istio default") {
		t.Fatalf("apply: %v", err)
	}
	j, _ := c.Journal.Load(ctx)
	if e, ok := j.Get("mesh/patch-istio-values/default"); !ok || e.State != journal.Done {
		t.Errorf("journal: %+v", e)
	}
	if _, err := Rollback(ctx, f, f.dyn, nil, c.Journal); err != nil {
		t.Fatal(err)
	}
	if _, ok := sailSpec(t, f)["values"]; ok {
		t.Errorf("rollback left the values map it created: %v", sailSpec(t, f))
	}
}

// The manifest path's wait needs the rollout: without a controller it times out.
func TestApplyWaitsForRollout(t *testing.T) {
	f := istioctlWorld(t)
	c := converter(f, nil)
	c.Options.Timeout = 300 * time.Millisecond
	p := plan(t, c)
	_, err := c.Apply(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "istiod's rollout istio-system/istiod did not finish") || !strings.Contains(err.Error(), "last: waiting for the deployment controller") || !strings.Contains(err.Error(), "already changed") {
		t.Fatalf("apply: %v", err)
	}
}

func TestDiff(t *testing.T) {
	f := istioctlWorld(t)
	c := converter(f, nil)
	a, b := plan(t, c), plan(t, c)
	if d := Diff(a, b); d != "" {
		t.Errorf("same plans differ: %s", d)
	}
	f.set(t, corev1.SchemeGroupVersion.WithResource("configmaps"), "istio-system", "istio", func(o runtime.Object) {
		o.(*corev1.ConfigMap).Data[MeshKey] = istioctlMeshOn
	})
	if d := Diff(a, plan(t, c)); !strings.Contains(d, "no longer planned: configmap istio-system/istio") {
		t.Errorf("diff: %s", d)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRolledOut(t *testing.T) {
	three := int32(3)
	for _, tc := range []struct {
		name   string
		gen    int64
		status appsv1.DeploymentStatus
		want   bool
	}{
		{"done", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, true},
		{"spec not seen", 3, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, false},
		{"not all updated", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 3}, false},
		{"not all available", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}, false},
		{"old replica left", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}, false},
	} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: tc.gen}, Spec: appsv1.DeploymentSpec{Replicas: &three}, Status: tc.status}
		if got, msg := rolledOut(d); got != tc.want {
			t.Errorf("%s: %v (%s)", tc.name, got, msg)
		}
	}
}
