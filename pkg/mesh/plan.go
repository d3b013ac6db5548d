package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Istio reads ISTIO_DUAL_STACK from 1.17 on.
var minIstio = version.MajorMinor(1, 17)

// NoteProxies says when the proxies take the setting.
const NoteProxies = "the proxies read ISTIO_DUAL_STACK from the mesh config when they start: running pods keep the old setting until they are re-created, which the workloads phase does"

// Plan finds istiod and its install method (istio.Inspect), reads the
// objects the method owns and says what Apply would change. It changes
// nothing. No Istio is ActionNothing with a note (the caller decides
// whether that blocks); a Helm install is ActionBlocked with the helm
// command that makes the change.
func (c *Converter) Plan(ctx context.Context) (*Plan, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{Options: c.Options}
	f, err := istio.Inspect(ctx, c.Kube, c.Dynamic)
	if err != nil {
		return nil, err
	}
	if !f.Found {
		p.Action = ActionNothing
		p.Summary = "no istiod (no Deployment labelled app=istiod in any namespace): nothing to change"
		p.Notes = append(p.Notes, "Istio was not found; install Istio 1.17 or newer for the mesh to be dual-stack")
		return p, nil
	}
	p.Method, p.Namespace, p.Istiod, p.Revision, p.Version = f.Method, f.Namespace, f.Istiod, f.Revision, f.Version
	if v, err := version.ParseGeneric(f.Version); err == nil && v.LessThan(minIstio) {
		p.Blocker = fmt.Sprintf("istiod %s is older than 1.17, which has no dual-stack support (ISTIO_DUAL_STACK): upgrade Istio first", f.Version)
		p.Action, p.Summary = ActionBlocked, "blocked: "+p.Blocker
		return p, nil
	}
	dep, err := c.Kube.AppsV1().Deployments(f.Namespace).Get(ctx, f.Istiod, metav1.GetOptions{})
	if err != nil {
		return nil, kube.Explain("reading istiod's Deployment "+f.Namespace+"/"+f.Istiod, err)
	}
	svc, err := c.istiodService(ctx, p)
	if err != nil {
		return nil, err
	}
	switch f.Method {
	case istio.MethodSail:
		if err := c.planSail(ctx, p, f, svc); err != nil {
			return nil, err
		}
	case istio.MethodHelm:
		if err := c.planHelm(p, dep, f, svc); err != nil {
			return nil, err
		}
	default:
		if err := c.planManifests(ctx, p, dep, svc); err != nil {
			return nil, err
		}
	}
	if err := c.planGateways(ctx, p); err != nil {
		return nil, err
	}
	decide(p)
	return p, nil
}

// istiodService reads istiod's own Service (istiod, or istiod-<rev>), nil
// when there is none.
func (c *Converter) istiodService(ctx context.Context, p *Plan) (*corev1.Service, error) {
	name := "istiod"
	if p.Revision != "" {
		name += "-" + p.Revision
	}
	svc, err := c.Kube.CoreV1().Services(p.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		p.Notes = append(p.Notes, fmt.Sprintf("istiod has no Service %s/%s: none is changed", p.Namespace, name))
		return nil, nil
	case err != nil:
		return nil, kube.Explain("reading istiod's Service "+p.Namespace+"/"+name, err)
	}
	return svc, nil
}

// dualPolicy says a Service policy asks for both families.
func dualPolicy(p string) bool {
	return p == string(corev1.IPFamilyPolicyPreferDualStack) || p == string(corev1.IPFamilyPolicyRequireDualStack)
}

// targetFamilies is svc's primary family first (it never changes), then
// the other; IPv4 first when there is no Service.
func targetFamilies(svc *corev1.Service) []corev1.IPFamily {
	primary := corev1.IPv4Protocol
	if svc != nil {
		switch {
		case len(svc.Spec.IPFamilies) > 0:
			primary = svc.Spec.IPFamilies[0]
		case ipfamily.Of(svc.Spec.ClusterIP) == ipfamily.IPv6:
			primary = corev1.IPv6Protocol
		}
	}
	if primary == corev1.IPv6Protocol {
		return []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	}
	return []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

// serviceDual says svc already has both families.
func serviceDual(svc *corev1.Service) bool {
	pol := ""
	if svc.Spec.IPFamilyPolicy != nil {
		pol = string(*svc.Spec.IPFamilyPolicy)
	}
	return dualPolicy(pol) && len(svc.Spec.IPFamilies) == 2
}

// planManifests plans the direct changes of an istioctl, plain-manifest
// or unknown install: istiod's env, the mesh config, istiod's Service.
func (c *Converter) planManifests(ctx context.Context, p *Plan, dep *appsv1.Deployment, svc *corev1.Service) error {
	p.IstioctlFlags = istioctlFlags(p.Revision, c.Options.Policy)
	// istiod's env.
	ctr := -1
	for i, ct := range dep.Spec.Template.Spec.Containers {
		if ct.Name == DiscoveryContainer || len(dep.Spec.Template.Spec.Containers) == 1 {
			ctr = i
			break
		}
	}
	if ctr < 0 {
		p.Blocker = fmt.Sprintf("istiod's Deployment %s/%s has no container named %q", dep.Namespace, dep.Name, DiscoveryContainer)
		return nil
	}
	ct := dep.Spec.Template.Spec.Containers[ctr]
	env := &EnvPlan{Namespace: dep.Namespace, Deployment: dep.Name, UID: dep.UID, ResourceVersion: dep.ResourceVersion,
		Generation: dep.Generation, Container: ct.Name}
	if e := findEnv(ct.Env); e != nil {
		env.Present, env.OriginalValue = true, e.Value
		if e.ValueFrom != nil {
			b, _ := json.Marshal(e.ValueFrom)
			env.OriginalValueFrom = string(b)
		}
	}
	env.Change = !(env.Present && env.OriginalValueFrom == "" && strings.EqualFold(env.OriginalValue, "true"))
	if env.Change {
		env.Patch = envPatch(env.Container, env.OriginalValueFrom != "")
	}
	p.Env = env

	// The mesh config.
	name := "istio"
	if p.Revision != "" {
		name += "-" + p.Revision
	}
	cm, err := c.Kube.CoreV1().ConfigMaps(p.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		p.Blocker = fmt.Sprintf("there is no mesh config ConfigMap %s/%s (istiod runs on its built-in mesh config, which has no proxyMetadata): create it with the key %q holding \"defaultConfig:\\n  proxyMetadata:\\n    %s: \\\"true\\\"\\n\", or re-install with the istioctl flags of the plan", p.Namespace, name, MeshKey, istio.DualStackEnv)
		return nil
	case err != nil:
		return kube.Explain("reading the mesh config "+p.Namespace+"/"+name, err)
	}
	if _, bin := cm.BinaryData[MeshKey]; bin {
		p.Blocker = fmt.Sprintf("%s/%s holds the mesh config as binaryData: edit it by hand", p.Namespace, name)
		return nil
	}
	text, present := cm.Data[MeshKey]
	edit, err := EnableProxyDualStack(text)
	if err != nil {
		p.Blocker = fmt.Sprintf("the mesh config %s/%s [%s] cannot be edited safely: %v", p.Namespace, name, MeshKey, err)
		return nil
	}
	p.MeshConfig = &MeshConfigPlan{Namespace: p.Namespace, Name: name, Key: MeshKey, UID: cm.UID, ResourceVersion: cm.ResourceVersion,
		KeyPresent: present, Change: edit.Changed || !present, Original: text, New: edit.Text, Edit: edit.Edit, Diff: edit.Diff}
	if edit.Edit == EditReformatted {
		p.Notes = append(p.Notes, fmt.Sprintf("the mesh config %s/%s is not in the block style this tool edits line by line: it is written back with the same settings, without its comments and key order (rollback restores the text byte for byte)", p.Namespace, name))
	}

	// istiod's Service.
	if svc != nil {
		p.Service = c.servicePlan(svc)
	}

	switch p.Method {
	case istio.MethodIstioctl:
		p.Notes = append(p.Notes, "installed with istioctl: the next `istioctl install` (or upgrade) re-applies istiod and the mesh config and drops these changes unless it is given: "+strings.Join(p.IstioctlFlags, " "),
			"an in-cluster IstioOperator controller (Istio 1.23 and older) reverts direct changes: if one runs, put the same settings in its IstioOperator resource instead")
	default:
		p.Notes = append(p.Notes, "the install method is unknown (plain manifests?): whatever re-applies istiod must carry the change too; with istioctl that is: "+strings.Join(p.IstioctlFlags, " "))
	}
	return nil
}

// servicePlan is istiod's Service as it is, and the shape it gets when it
// is not dual-stack yet (Change).
func (c *Converter) servicePlan(svc *corev1.Service) *ServicePlan {
	sp := &ServicePlan{Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
		Families: slices.Clone(svc.Spec.IPFamilies), ClusterIPs: slices.Clone(svc.Spec.ClusterIPs)}
	if svc.Spec.IPFamilyPolicy != nil {
		sp.Policy = *svc.Spec.IPFamilyPolicy
	}
	if !serviceDual(svc) && svc.Spec.ClusterIP != "" && svc.Spec.Type != corev1.ServiceTypeExternalName {
		sp.Change = true
		sp.TargetPolicy, sp.TargetFamilies = c.Options.Policy, targetFamilies(svc)
	}
	return sp
}

func findEnv(env []corev1.EnvVar) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == istio.DualStackEnv {
			return &env[i]
		}
	}
	return nil
}

// envPatch is the strategic merge patch that sets the variable in the
// container (containers and env merge by name).
func envPatch(container string, dropValueFrom bool) string {
	e := map[string]any{"name": istio.DualStackEnv, "value": "true"}
	if dropValueFrom {
		e["valueFrom"] = nil
	}
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"name": container, "env": []any{e}}}}}}})
	return string(b)
}

// istioctlFlags are what `istioctl install` needs to set the same
// (https://istio.io/latest/docs/setup/additional-setup/dual-stack/;
// values.pilot.ipFamilyPolicy is the istiod chart's value). Kubernetes
// gives a Service whose policy becomes dual-stack its second family.
func istioctlFlags(revision string, policy corev1.IPFamilyPolicy) []string {
	var out []string
	if revision != "" {
		out = append(out, "--revision", revision)
	}
	return append(out,
		"--set", "values.pilot.env."+istio.DualStackEnv+"=true",
		"--set", "meshConfig.defaultConfig.proxyMetadata."+istio.DualStackEnv+"=\"true\"",
		"--set", "values.pilot.ipFamilyPolicy="+string(policy))
}

// The leaves of the Sail Istio resource's spec this phase sets.
var (
	sailEnvPath    = []string{"values", "pilot", "env", istio.DualStackEnv}
	sailProxyPath  = []string{"values", "meshConfig", "defaultConfig", "proxyMetadata", istio.DualStackEnv}
	sailPolicyPath = []string{"values", "pilot", "ipFamilyPolicy"}
	sailFamsPath   = []string{"values", "pilot", "ipFamilies"}
)

// planSail plans the merge patch of the Sail operator's Istio resource.
func (c *Converter) planSail(ctx context.Context, p *Plan, f *istio.Facts, svc *corev1.Service) error {
	if c.Dynamic == nil {
		return fmt.Errorf("planning the mesh phase of a Sail install needs the dynamic client")
	}
	all, err := kube.ListUnstructured(ctx, c.Dynamic, istio.SailIstioGVR, "", metav1.ListOptions{})
	if err != nil {
		return kube.Explain("listing the Sail operator's Istio resources", err)
	}
	var cands []unstructured.Unstructured
	for _, u := range all {
		ns, _, _ := unstructured.NestedString(u.Object, "spec", "namespace")
		if ns == "" {
			ns = "istio-system" // the CRD's default
		}
		if ns == f.Namespace {
			cands = append(cands, u)
		}
	}
	var obj *unstructured.Unstructured
	switch {
	case len(cands) == 1:
		obj = &cands[0]
	case len(cands) == 0:
		p.Blocker = fmt.Sprintf("istiod in %s is managed by the Sail operator, but no Istio resource (sailoperator.io/v1) installs into that namespace", f.Namespace)
		return nil
	default:
		for i := range cands {
			if n := cands[i].GetName(); n == f.Revision || (f.Revision == "" && n == "default") {
				obj = &cands[i]
			}
		}
		if obj == nil {
			p.Blocker = fmt.Sprintf("%d Sail Istio resources install into %s: this tool cannot tell which one runs istiod %s", len(cands), f.Namespace, f.Istiod)
			return nil
		}
	}
	spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
	if spec == nil {
		spec = map[string]any{}
	}
	sp := &SailPlan{Name: obj.GetName(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration()}
	want := []setting{{sailEnvPath, "true", isTrueString}, {sailProxyPath, "true", isTrueString}}
	policy, _ := leaf(spec, sailPolicyPath)
	if s, _ := policy.(string); !dualPolicy(s) {
		fams := targetFamilies(svc)
		want = append(want,
			setting{sailPolicyPath, string(c.Options.Policy), func(any) bool { return false }},
			setting{sailFamsPath, []any{string(fams[0]), string(fams[1])}, func(v any) bool { l, _ := v.([]any); return len(l) == 2 }})
	}
	created := map[string][]string{}
	for _, w := range want {
		cur, present := leaf(spec, w.path)
		if present && w.done(cur) {
			continue
		}
		missing, err := missingParents(spec, w.path)
		if err != nil {
			p.Blocker = fmt.Sprintf("the Istio resource %s: %v", sp.Name, err)
			return nil
		}
		for _, m := range missing {
			created[strings.Join(m, ".")] = m
		}
		target, _ := json.Marshal(w.value)
		vc := ValueChange{Path: w.path, Present: present, Target: string(target)}
		if present {
			b, _ := json.Marshal(cur)
			vc.Original = string(b)
		}
		sp.Changes = append(sp.Changes, vc)
	}
	keys := make([]string, 0, len(created))
	for k := range created {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sp.Created = append(sp.Created, created[k])
	}
	if len(sp.Changes) > 0 {
		patch := map[string]any{}
		for _, ch := range sp.Changes {
			var v any
			_ = json.Unmarshal([]byte(ch.Target), &v)
			setPath(patch, ch.Path, v)
		}
		b, _ := json.Marshal(map[string]any{"spec": patch})
		sp.Patch = string(b)
	}
	p.Sail = sp
	p.Notes = append(p.Notes, fmt.Sprintf("the Sail operator renders istiod, its mesh config and its Service from the Istio resource %s: the change is made there, and the operator rolls istiod out", sp.Name))
	return nil
}

func isTrueString(v any) bool {
	s, ok := v.(string)
	return ok && strings.EqualFold(s, "true")
}

// leaf reads m at path; present is false when a key on the way is missing.
func leaf(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// missingParents are the maps on the way to path that do not exist (or
// are null), outermost first; a parent of another type is an error.
func missingParents(m map[string]any, path []string) ([][]string, error) {
	var out [][]string
	var cur any = m
	for i := 0; i < len(path)-1; i++ {
		mm, _ := cur.(map[string]any)
		var next any
		if mm != nil {
			next = mm[path[i]]
		}
		switch next.(type) {
		case nil:
			out = append(out, slices.Clone(path[:i+1]))
			cur = nil
		case map[string]any:
			cur = next
		default:
			return nil, fmt.Errorf("spec.%s is a %T, not a map", strings.Join(path[:i+1], "."), next)
		}
	}
	return out, nil
}

// setPath sets m at path, making maps on the way (replacing what is not a
// map).
func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// decide sets the plan's action and summary.
func decide(p *Plan) {
	if p.Blocker != "" {
		p.Action, p.Summary = ActionBlocked, "blocked: "+p.Blocker
		return
	}
	var parts []string
	if p.Sail != nil && len(p.Sail.Changes) > 0 {
		var paths []string
		for _, ch := range p.Sail.Changes {
			paths = append(paths, "spec."+strings.Join(ch.Path, ".")+"="+ch.Target)
		}
		parts = append(parts, fmt.Sprintf("patch the Sail Istio resource %s (%s), then wait for the operator to roll istiod out", p.Sail.Name, strings.Join(paths, ", ")))
	}
	if h := p.Helm; h != nil && len(h.Changes) > 0 {
		var sets []string
		for _, ch := range h.Changes {
			sets = append(sets, strings.Join(ch.Path, ".")+"="+ch.Target)
		}
		parts = append(parts, fmt.Sprintf("helm upgrade the release %s/%s from revision %d with its values and %s, then wait for istiod's rollout", h.Namespace, h.Release, h.Revision, strings.Join(sets, ", ")))
	}
	if len(p.Gateways) > 0 {
		parts = append(parts, fmt.Sprintf("give the Gateway API Gateways %s a parameters ConfigMap whose Service overlay is dual-stack, then wait for istiod to re-render their Services", strings.Join(gatewayNames(p.Gateways), ", ")))
	}
	if p.Service != nil && p.Service.Change {
		parts = append(parts, fmt.Sprintf("make istiod's Service %s/%s %s [%s]", p.Service.Namespace, p.Service.Name, p.Service.TargetPolicy, familiesString(p.Service.TargetFamilies)))
	}
	if p.MeshConfig != nil && p.MeshConfig.Change {
		parts = append(parts, fmt.Sprintf("set defaultConfig.proxyMetadata.%s: \"true\" in %s/%s [%s]", istio.DualStackEnv, p.MeshConfig.Namespace, p.MeshConfig.Name, p.MeshConfig.Key))
	}
	if p.Env != nil && p.Env.Change {
		parts = append(parts, fmt.Sprintf("set %s=true in the %s container of deployment %s/%s and wait for its rollout", istio.DualStackEnv, p.Env.Container, p.Env.Namespace, p.Env.Deployment))
	}
	if len(parts) == 0 {
		p.Action = ActionNothing
		p.Summary = fmt.Sprintf("istiod (%s) already has %s=true in its env and in the proxies' mesh config, and its Service is dual-stack", p.Method, istio.DualStackEnv)
		return
	}
	p.Action, p.Summary = ActionChange, strings.Join(parts, "; ")
	p.Notes = append(p.Notes, NoteProxies)
}

// describeChanges is "path original -> target, ..." ("(absent)" for a
// value that was not there).
func describeChanges(prefix string, changes []ValueChange) string {
	var ch []string
	for _, c := range changes {
		orig := "(absent)"
		if c.Present {
			orig = c.Original
		}
		ch = append(ch, fmt.Sprintf("%s%s %s -> %s", prefix, strings.Join(c.Path, "."), orig, c.Target))
	}
	return strings.Join(ch, ", ")
}

func familiesString(f []corev1.IPFamily) string {
	out := make([]string, len(f))
	for i, x := range f {
		out[i] = string(x)
	}
	return strings.Join(out, ",")
}

// Diff says how two plans differ in what they change, "" when they change
// the same objects (by UID) from the same values to the same values.
// Resource versions do not count.
func Diff(was, now *Plan) string {
	keys := func(p *Plan) map[string]string {
		k := map[string]string{
			"action": fmt.Sprintf("%s (%s)", p.Action, p.Method),
			"istiod": p.Namespace + "/" + p.Istiod,
		}
		if p.Blocker != "" {
			k["blocker"] = p.Blocker
		}
		if s := p.Sail; s != nil && len(s.Changes) > 0 {
			k["sail"] = fmt.Sprintf("istio %s (uid %s): %s", s.Name, s.UID, describeChanges("spec.", s.Changes))
		}
		if h := p.Helm; h != nil && len(h.Changes) > 0 {
			k["helm"] = fmt.Sprintf("release %s/%s revision %d: %s", h.Namespace, h.Release, h.Revision, describeChanges("", h.Changes))
		}
		for _, g := range p.Gateways {
			k["gateway "+g.Namespace+"/"+g.Name] = fmt.Sprintf("uid %s: %s [%s] -> parameters %s", g.UID, g.Service, strings.Join(g.Families, ","), g.ConfigMap)
		}
		if e := p.Env; e != nil && e.Change {
			k["env"] = fmt.Sprintf("deployment %s/%s (uid %s) container %s: present %v value %q valueFrom %s -> true", e.Namespace, e.Deployment, e.UID, e.Container, e.Present, e.OriginalValue, e.OriginalValueFrom)
		}
		if m := p.MeshConfig; m != nil && m.Change {
			k["meshConfig"] = fmt.Sprintf("configmap %s/%s [%s] (uid %s): %q -> %q", m.Namespace, m.Name, m.Key, m.UID, m.Original, m.New)
		}
		if s := p.Service; s != nil && s.Change {
			k["service"] = fmt.Sprintf("service %s/%s (uid %s): %s [%s] -> %s [%s]", s.Namespace, s.Name, s.UID, s.Policy, familiesString(s.Families), s.TargetPolicy, familiesString(s.TargetFamilies))
		}
		return k
	}
	a, b := keys(was), keys(now)
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var d []string
	for _, n := range sorted {
		x, y := a[n], b[n]
		switch {
		case x == y:
		case x == "":
			d = append(d, "newly planned: "+y)
		case y == "":
			d = append(d, "no longer planned: "+x)
		default:
			d = append(d, fmt.Sprintf("%s: planned %s, now %s", n, x, y))
		}
	}
	return strings.Join(d, "; ")
}
