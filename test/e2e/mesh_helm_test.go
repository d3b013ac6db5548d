package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacauthz "k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// helmValues reads revision rev of the istiod release (0: the newest),
// from its record as helm keeps it (a Secret), with Helm's own SDK.
func helmRevision(t *testing.T, kubeconfig string, rev int) (int, string, map[string]any) {
	t.Helper()
	cfg, err := harness.HelmConfig(kubeconfig, harness.IstioNamespace)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cfg.Releases.Last(harness.HelmIstiodRelease)
	if rev > 0 {
		r, err = cfg.Releases.Get(harness.HelmIstiodRelease, rev)
	}
	if err != nil {
		t.Fatalf("reading the istiod release: %v", err)
	}
	b, _ := json.Marshal(r.Config) // a comparable copy
	var vals map[string]any
	_ = json.Unmarshal(b, &vals)
	return r.Version, string(r.Info.Status), vals
}

// helmRoleFile is the Role the mesh phase needs on a Helm install.
const helmRoleFile = "role-mesh-helm.yaml"

func loadRole(t *testing.T, file string) *rbacv1.Role {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var r rbacv1.Role
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if r.Kind != "Role" || r.Name == "" || r.Namespace == "" || len(r.Rules) == 0 {
		t.Fatalf("%s is not a namespaced Role with rules: %+v", file, r)
	}
	return &r
}

// TestUpgradeOnHelmIstio: with istiod installed by Helm (a real release
// record written by Helm's SDK), upgrade switches the mesh through a Helm
// upgrade of the release: the next revision holds the release's values
// plus the dual-stack values, the previous revision's values are
// unchanged, and Helm's rendering makes istiod, its mesh config and its
// Service dual-stack. rollback is a Helm rollback: a new revision with
// exactly the previous values, rendered back. Both run as a user who has
// only dualstack-admin and the dualstack-mesh-helm Role in istio-system,
// every request authorized by the apiserver's own RBAC authorizer: none
// is denied, and each rule of the Role is the only grant of some request.
func TestUpgradeOnHelmIstio(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{Istio: "helm"})
	env := awsTLS.Env()
	ctx := context.Background()
	carol := harness.TokenUser{Name: "carol", Token: "carol-token-helm-0123456789"}
	proxy, err := harness.StartKubeFaultProxy(t, s.API.Config, harness.KubeFaultProxyOptions{RBACUsers: []harness.TokenUser{carol}})
	if err != nil {
		t.Fatal(err)
	}
	bindRole(t, s.API.Kube, loadClusterRole(t, adminRoleFile), carol.Name)
	role := loadRole(t, helmRoleFile)
	if _, err := s.API.Kube.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.API.Kube.RbacV1().RoleBindings(role.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: role.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: carol.Name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kcfg, err := proxy.UserKubeconfig(t.TempDir(), carol)
	if err != nil {
		t.Fatal(err)
	}
	rev, status, v1 := helmRevision(t, kcfg, 0)
	if rev != 1 || status != "deployed" || harness.IstioDualStackNow(ctx, s.API.Kube) {
		t.Fatalf("the Helm install should start at revision 1, single-stack: %d %s", rev, status)
	}

	// The mesh plan names the release, its revision and the values.
	r := plugin(t, kcfg, env, "mesh", "--dry-run=client", "-o", "json")
	var mp struct {
		Plan struct {
			Method string `json:"method"`
			Helm   *struct {
				Release  string `json:"release"`
				Revision int    `json:"revision"`
				Changes  []struct {
					Path []string `json:"path"`
				} `json:"changes"`
			} `json:"helm"`
			Blocker string `json:"blocker"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &mp); err != nil || r.Code != 0 || mp.Plan.Method != "helm" || mp.Plan.Helm == nil ||
		mp.Plan.Helm.Release != harness.HelmIstiodRelease || mp.Plan.Helm.Revision != 1 || len(mp.Plan.Helm.Changes) != 4 {
		t.Fatalf("mesh --dry-run=client on a Helm install: %v\n%s", err, r)
	}
	if rev, _, _ := helmRevision(t, kcfg, 0); rev != 1 {
		t.Fatalf("a dry run made revision %d", rev)
	}

	r = plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade on a Helm install: %s\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"mesh": "done", "workloads": "done", "validate": "done"})
	rev, status, v2 := helmRevision(t, kcfg, 0)
	if rev != 2 || status != "deployed" {
		t.Fatalf("after upgrade the release is at revision %d (%s), want 2 deployed", rev, status)
	}
	if _, _, again := helmRevision(t, kcfg, 1); !reflect.DeepEqual(again, v1) {
		t.Errorf("revision 1's values changed: %v, were %v", again, v1)
	}
	pilot, _ := v2["pilot"].(map[string]any)
	envs, _ := pilot["env"].(map[string]any)
	mesh, _ := v2["meshConfig"].(map[string]any)
	if envs["ISTIO_DUAL_STACK"] != "true" || pilot["ipFamilyPolicy"] != "PreferDualStack" || mesh == nil || !reflect.DeepEqual(v2["global"], v1["global"]) {
		t.Errorf("revision 2's values: %v (revision 1: %v)", v2, v1)
	}
	// Helm rendered them: istiod, the mesh config, the Service.
	if !harness.IstioDualStackNow(ctx, s.API.Kube) {
		t.Error("after upgrade, istiod and the mesh config are not dual-stack")
	}
	svc, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil || len(svc.Spec.ClusterIPs) != 2 || svc.Annotations["meta.helm.sh/release-name"] != harness.HelmIstiodRelease {
		t.Errorf("istiod's Service after upgrade: %v %v", err, svc.Spec.ClusterIPs)
	}
	if !s.Proxies.ServesIPv6(ctx) {
		t.Error("the gateway's proxies do not serve IPv6 after upgrade")
	}

	r = plugin(t, kcfg, env, "rollback", "--yes", "--timeout", "60s")
	if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "helm release "+harness.IstioNamespace+"/"+harness.HelmIstiodRelease) {
		t.Fatalf("rollback on a Helm install:\n%s", r)
	}
	rev, status, v3 := helmRevision(t, kcfg, 0)
	if rev != 3 || status != "deployed" || !reflect.DeepEqual(v3, v1) {
		t.Errorf("after rollback: revision %d (%s) values %v, want revision 3 with revision 1's %v", rev, status, v3, v1)
	}
	if err := harness.WaitFor(ctx, 10*time.Second, "Helm's rendering of the original", func(ctx context.Context) (bool, error) {
		return !harness.IstioDualStackNow(ctx, s.API.Kube), nil
	}); err != nil {
		t.Error(err)
	}

	reqs := proxy.Requests()
	admin := loadClusterRole(t, adminRoleFile)
	for _, q := range reqs {
		if q.Status == 403 {
			t.Errorf("denied: %s %s/%s", q.Key(), q.Namespace, q.Name)
		}
	}
	for i, rule := range role.Rules {
		only := ""
		for _, q := range reqs {
			if q.Status == 403 || q.Attrs == nil || !q.Attrs.IsResourceRequest() || q.Namespace != role.Namespace || !rbacauthz.RuleAllows(q.Attrs, &role.Rules[i]) {
				continue
			}
			other := false
			for j := range role.Rules {
				other = other || (j != i && rbacauthz.RuleAllows(q.Attrs, &role.Rules[j]))
			}
			for j := range admin.Rules {
				other = other || rbacauthz.RuleAllows(q.Attrs, &admin.Rules[j])
			}
			if !other {
				only = q.Key()
				break
			}
		}
		if only == "" {
			t.Errorf("rule %s of %s is not needed: no request depends on it alone", ruleString(rule), helmRoleFile)
		} else {
			t.Logf("rule %s: needed for %s", ruleString(rule), only)
		}
	}
	t.Logf("Helm release istiod: revision 1 %v; revision 2 (upgrade) %v; revision 3 (rollback) %v", v1, v2, v3)
}
