package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// policiesJSON mirrors the stable fields of `policies plan|apply -o json`.
type policiesJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    *struct {
		Policies []struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Action    string `json:"action"`
			Findings  []struct {
				Direction string `json:"direction"`
				IPv4      struct {
					CIDR   string   `json:"cidr"`
					Except []string `json:"except"`
				} `json:"ipv4"`
				IPv6 *struct {
					CIDR   string   `json:"cidr"`
					Except []string `json:"except"`
				} `json:"ipv6"`
				Action string `json:"action"`
				Reason string `json:"reason"`
			} `json:"findings"`
		} `json:"policies"`
		Changes   int `json:"changes"`
		Additions int `json:"additions"`
		Unmapped  int `json:"unmapped"`
	} `json:"plan"`
	Result *struct {
		Changed int `json:"changed"`
	} `json:"result"`
}

func parsePolicies(t *testing.T, r result) policiesJSON {
	t.Helper()
	var p policiesJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("policies -o json is not JSON: %v\n%s", err, r)
	}
	return p
}

// check is one check of a status report, by name.
func (s statusJSON) check(t *testing.T, name string) (status, message, fix string) {
	t.Helper()
	for _, c := range s.Checks {
		if c.Name == name {
			return c.Status, c.Message, c.Remediation
		}
	}
	t.Fatalf("status has no check %s: %+v", name, s.Checks)
	return "", "", ""
}

// policyWorld creates, on the IPv4-only cluster, NetworkPolicies as an
// application's owners write them: one that keeps pods from the instance
// metadata service, one that allows the internet but not the cluster's
// own ranges, one already dual-stack, and one to a partner's network,
// whose IPv6 twin nobody can derive.
func policyWorld(ctx context.Context, t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	for _, ns := range []string{"shop", "web", "legacy"} {
		if err := harness.EnsureNamespace(ctx, kc, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	egress := networkingv1.PolicyTypeEgress
	https := intstr.FromInt32(443)
	block := func(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
	}
	for _, np := range []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-metadata"}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{egress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("0.0.0.0/0", "169.254.169.254/32")}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "internet-only"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
			PolicyTypes: []networkingv1.PolicyType{egress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Port: &https}},
				To:    []networkingv1.NetworkPolicyPeer{block("0.0.0.0/0", "10.128.0.0/14", "172.30.0.0/16")}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "dual"}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{egress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("0.0.0.0/0"), block("::/0")}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "legacy", Name: "partner"}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{egress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("203.0.113.0/24")}}}}},
	} {
		if _, err := kc.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating networkpolicy %s/%s: %v", np.Namespace, np.Name, err)
		}
	}
}

// policySpecs is every NetworkPolicy's spec as JSON, and its resourceVersion.
func policySpecs(ctx context.Context, t *testing.T, kc kubernetes.Interface) (map[string]string, map[string]string) {
	t.Helper()
	list, err := kc.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	specs, rvs := map[string]string{}, map[string]string{}
	for _, np := range list.Items {
		b, _ := json.Marshal(np.Spec)
		specs[np.Namespace+"/"+np.Name], rvs[np.Namespace+"/"+np.Name] = string(b), np.ResourceVersion
	}
	return specs, rvs
}

// networkConverted writes the Network status the network operator writes
// once the network phase is done: the IPv6 pod and service ranges.
func networkConverted(ctx context.Context, t *testing.T, api *harness.APIServer) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "networks"}
	nw, err := api.Dynamic.Resource(gvr).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedSlice(nw.Object, []any{
		map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}, map[string]any{"cidr": "fd01::/48", "hostPrefix": int64(64)},
	}, "status", "clusterNetwork")
	_ = unstructured.SetNestedStringSlice(nw.Object, []string{"172.30.0.0/16", "fd02::/112"}, "status", "serviceNetwork")
	// The Network CRD has no status subresource: status is written with the object.
	if _, err := api.Dynamic.Resource(gvr).Update(ctx, nw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPoliciesAsDualstackAdmin: on the OpenShift-on-AWS world with
// NetworkPolicies that name IPv4 only, run as a user bound to
// dualstack-admin on an RBAC apiserver: status reports each policy with its
// twin (and the metadata endpoint one instance has enabled), policies plan
// shows the twins and what it cannot derive, a plain upgrade leaves the
// policies out, bad input changes nothing, policies apply adds exactly the
// twins, status passes, rollback restores every spec exactly; without the
// role's update rule, apply fails naming it.
func TestPoliciesAsDualstackAdmin(t *testing.T) {
	ctx := context.Background()
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-policies-0123456789"}
	api, world, env := openShiftOnAWSWith(t, harness.APIServerOptions{RBAC: true, TokenUsers: []harness.TokenUser{alice}}, harness.OpenShiftOnAWSOptions{})
	role := loadClusterRole(t, adminRoleFile)
	bindRole(t, api.Kube, role, alice.Name)
	kcfg, err := api.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}
	policyWorld(ctx, t, api.Kube)
	// One node's instance answers metadata over IPv6 too.
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	inst := world.AWS.Instances[0].ID
	if _, err := ec2.NewFromConfig(cfg).ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{
		InstanceId: aws.String(inst), HttpProtocolIpv6: ec2types.InstanceMetadataProtocolStateEnabled}); err != nil {
		t.Fatalf("enabling the IPv6 metadata endpoint in moto: %v", err)
	}

	// Before: the cluster is IPv4-only.
	st := parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	s, msg, fix := st.check(t, "network-policy-ipv6")
	for _, want := range []string{"shop/deny-metadata egress[0] 0.0.0.0/0 except 169.254.169.254/32 -> add ::/0 except fd00:ec2::254/128", "legacy/partner", "shop/internet-only"} {
		if s != "WARN" || !strings.Contains(msg, want) {
			t.Errorf("network-policy-ipv6 before: %s %q, want WARN naming %q", s, msg, want)
		}
	}
	if !strings.Contains(fix, "policies apply") {
		t.Errorf("network-policy-ipv6 fix: %q", fix)
	}
	s, msg, fix = st.check(t, "metadata-ipv6")
	if s != "WARN" || !strings.Contains(msg, "enabled on 1 of 6 instances ("+inst+")") || !strings.Contains(msg, "fd00:ec2::254") || !strings.Contains(msg, "shop/deny-metadata") || fix == "" {
		t.Errorf("metadata-ipv6 before: %s %q fix %q", s, msg, fix)
	}

	// The plan before the network has IPv6: the pod and service ranges
	// have no twin yet.
	p := parsePolicies(t, plugin(t, kcfg, env, "policies", "plan", "-o", "json"))
	if p.Plan == nil || p.Plan.Changes != 1 || p.Outcome != "planned" {
		t.Fatalf("plan on the IPv4-only network: %+v", p)
	}
	networkConverted(ctx, t, api)

	// Bad input: nothing changes, exit 2, one line.
	before, rvs := policySpecs(ctx, t, api.Kube)
	for _, args := range [][]string{
		{"policies", "apply", "--include-namespaces", "nosuch", "--yes"},
		{"policies", "apply", "--revert", "--include-namespaces", "shop", "--yes"},
		{"policies", "apply", "--dry-run=maybe"},
	} {
		r := plugin(t, kcfg, env, args...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || r.Stdout != "" {
			t.Errorf("%v: want exit 2 and one line:\n%s", args, r)
		}
	}

	r := plugin(t, kcfg, env, "policies", "plan", "-o", "json")
	p = parsePolicies(t, r)
	if r.Code != 0 || p.Plan.Changes != 2 || p.Plan.Additions != 2 || p.Plan.Unmapped != 1 {
		t.Fatalf("plan: %d changes, %d additions, %d unmapped; want 2, 2, 1\n%s", p.Plan.Changes, p.Plan.Additions, p.Plan.Unmapped, r)
	}
	want := map[string]string{
		"shop/deny-metadata": "add ::/0 except [fd00:ec2::254/128]",
		"shop/internet-only": "add ::/0 except [fd01::/48 fd02::/112]",
		"web/dual":           "present ::/0 except []",
		"legacy/partner":     "unmapped",
	}
	for _, it := range p.Plan.Policies {
		ref := it.Namespace + "/" + it.Name
		f := it.Findings[0]
		got := f.Action
		if f.IPv6 != nil {
			got += " " + f.IPv6.CIDR + " except [" + strings.Join(f.IPv6.Except, " ") + "]"
		}
		if got != want[ref] {
			t.Errorf("%s: %q, want %q", ref, got, want[ref])
		}
		if ref == "legacy/partner" && !strings.Contains(f.Reason, "never invented") {
			t.Errorf("partner's reason: %q", f.Reason)
		}
	}

	// A plain upgrade never plans the policies.
	r = plugin(t, kcfg, env, "upgrade", "--dry-run=client", "-o", "json")
	for _, ph := range parseUpgrade(t, r).Plan.Phases {
		if (ph.Name == "policies" || ph.Name == "router") && ph.Action != "skipped" {
			t.Errorf("a plain upgrade plans phase %s: %s %s", ph.Name, ph.Action, ph.Summary)
		}
	}
	if after, _ := policySpecs(ctx, t, api.Kube); !equalMaps(before, after) {
		t.Fatal("a plan or a refused command changed a NetworkPolicy")
	}

	// Needed: without the update rule, apply fails naming it, and changes nothing.
	for i, rule := range role.Rules {
		if contains(rule.Resources, "networkpolicies") && contains(rule.Verbs, "update") {
			setRules(t, api.Kube, role.Name, without(role.Rules, i), alice.Name, probeOf(rule), false)
			r := plugin(t, kcfg, env, "policies", "apply", "--yes")
			if line, ok := forbiddenByRule(r.Stdout+r.Stderr, rule); r.Code != 1 || !ok {
				t.Errorf("apply without %s:\n%s", ruleString(rule), r)
			} else {
				t.Logf("without %s: %s", ruleString(rule), line)
			}
			setRules(t, api.Kube, role.Name, role.Rules, alice.Name, probeOf(rule), true)
		}
	}
	if after, _ := policySpecs(ctx, t, api.Kube); !equalMaps(before, after) {
		t.Fatal("a forbidden apply changed a NetworkPolicy")
	}

	r = plugin(t, kcfg, env, "policies", "apply", "--yes", "-o", "json")
	p = parsePolicies(t, r)
	if r.Code != 0 || p.Outcome != "converted" || p.Result == nil || p.Result.Changed != 2 {
		t.Fatalf("policies apply:\n%s", r)
	}
	applied, appliedRVs := policySpecs(ctx, t, api.Kube)
	for ref, twin := range map[string]string{"shop/deny-metadata": `{"cidr":"::/0","except":["fd00:ec2::254/128"]}`, "shop/internet-only": `{"cidr":"::/0","except":["fd01::/48","fd02::/112"]}`} {
		if !strings.Contains(applied[ref], `{"ipBlock":`+twin+`}`) || !strings.Contains(applied[ref], "169.254.169.254/32") && ref == "shop/deny-metadata" {
			t.Errorf("%s after apply: %s", ref, applied[ref])
		}
	}
	for _, ref := range []string{"web/dual", "legacy/partner"} {
		if applied[ref] != before[ref] || appliedRVs[ref] != rvs[ref] {
			t.Errorf("%s was changed: %s", ref, applied[ref])
		}
	}
	if r := plugin(t, kcfg, env, "policies", "apply", "--yes", "-o", "json"); parsePolicies(t, r).Outcome != "nothing-to-do" {
		t.Errorf("a second apply:\n%s", r)
	}

	// After: only the partner's block, which has no twin to derive, is left;
	// without it the check passes.
	st = parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	if s, msg, _ := st.check(t, "network-policy-ipv6"); s != "WARN" || strings.Contains(msg, "shop/") || !strings.Contains(msg, "legacy/partner") {
		t.Errorf("network-policy-ipv6 after apply: %s %q", s, msg)
	}
	if s, msg, _ := st.check(t, "metadata-ipv6"); s != "PASS" || !strings.Contains(msg, "keeps them from fd00:ec2::254 too") {
		t.Errorf("metadata-ipv6 after apply: %s %q", s, msg)
	}
	partner, _ := api.Kube.NetworkingV1().NetworkPolicies("legacy").Get(ctx, "partner", metav1.GetOptions{})
	if err := api.Kube.NetworkingV1().NetworkPolicies("legacy").Delete(ctx, "partner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st = parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	if s, msg, _ := st.check(t, "network-policy-ipv6"); s != "PASS" {
		t.Errorf("network-policy-ipv6 with only derivable blocks, after apply: %s %q", s, msg)
	}
	partner.ResourceVersion, partner.UID = "", ""
	if _, err := api.Kube.NetworkingV1().NetworkPolicies("legacy").Create(ctx, partner, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// rollback restores each spec exactly.
	r = plugin(t, kcfg, env, "rollback", "--yes", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"layer": "policies"`) && !strings.Contains(r.Stdout, `"layer":"policies"`) {
		t.Fatalf("rollback:\n%s", r)
	}
	restored, _ := policySpecs(ctx, t, api.Kube)
	for ref, spec := range before {
		if restored[ref] != spec {
			t.Errorf("%s after rollback:\n got %s\nwant %s", ref, restored[ref], spec)
		}
	}
	if r := plugin(t, kcfg, env, "policies", "apply", "--revert", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Errorf("revert after rollback:\n%s", r)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
