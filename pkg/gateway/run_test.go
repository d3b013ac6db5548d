package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

type fakeLBs struct {
	lbs map[string]*LoadBalancer // by hostname
	set []string
	// aliases are DNS names that lead to a load balancer's hostname.
	aliases map[string]string
}

func (f *fakeLBs) ByHostname(_ context.Context, h string) (*LoadBalancer, error) {
	lb, ok := f.lbs[h]
	if !ok {
		return nil, nil
	}
	c := *lb
	return &c, nil
}

func (f *fakeLBs) SetDualStack(_ context.Context, lb *LoadBalancer) error {
	f.set = append(f.set, lb.Name)
	for _, v := range f.lbs {
		if v.Name == lb.Name {
			v.IPAddressType = "dualstack"
		}
	}
	return nil
}

// fakeDNS answers AAAA only for dualstack load balancers, like Route 53's
// alias records of an ELB.
type fakeDNS struct{ lbs *fakeLBs }

func (d fakeDNS) LookupIP(_ context.Context, network, host string) ([]net.IP, error) {
	if to, ok := d.lbs.aliases[host]; ok {
		host = to
	}
	lb, ok := d.lbs.lbs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if network == "ip6" {
		if lb.IPAddressType != "dualstack" {
			return nil, nil
		}
		return []net.IP{net.ParseIP("2600:1f18::1")}, nil
	}
	return []net.IP{net.ParseIP("192.0.2.10")}, nil
}

func runner(kc *fake.Clientset, lbs *fakeLBs, shown *bytes.Buffer) *Runner {
	return &Runner{
		Kube: kc, AWS: lbs, Resolver: fakeDNS{lbs}, Progress: cli.NewProgress(&bytes.Buffer{}),
		Show:    func(p string) { shown.WriteString(p + "\n") },
		Confirm: func(context.Context) error { return nil },
		Journal: journal.NewStore(kc, "", ""),
	}
}

func withHost(svc *corev1.Service, host string) *corev1.Service {
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: host}}
	return svc
}

func TestRunNLB(t *testing.T) {
	ctx := context.Background()
	host := "a1.elb.us-east-1.amazonaws.com"
	kc := fake.NewClientset(withHost(gatewaySvc("istio-system", "istio-ingressgateway", map[string]string{AnnotationLBType: "nlb", "helm": "keep"}), host))
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{host: {Name: "a1", Type: "network", IPAddressType: "ipv4", DNSName: host}}}
	var shown bytes.Buffer
	o := Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"}

	// Dry run: the plan, and nothing changes.
	dry := o
	dry.DryRun = cli.DryRunClient
	if _, err := runner(kc, lbs, &shown).Run(ctx, dry); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown.String(), "spec.ipFamilyPolicy: SingleStack -> RequireDualStack") || !strings.Contains(shown.String(), "SetIpAddressType ipv4 -> dualstack") || len(lbs.set) != 0 {
		t.Fatalf("dry-run plan:\n%s", shown.String())
	}

	res, err := runner(kc, lbs, &shown).Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := kc.CoreV1().Services("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(svc.Spec.IPFamilies) != 2 ||
		svc.Annotations[AnnotationIPAddressType] != "dualstack" || svc.Annotations["helm"] != "keep" {
		t.Fatalf("service after: %+v", svc)
	}
	if len(lbs.set) != 1 || !res.Changed || len(res.IPv6) != 1 || res.LoadBalancer.IPAddressType != "dualstack" {
		t.Fatalf("result %+v, set %v", res, lbs.set)
	}

	// Idempotent.
	res, err = runner(kc, lbs, &shown).Run(ctx, o)
	if err != nil || res.Changed || len(lbs.set) != 1 || res.Actions[0].Status != "unchanged" {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

func TestRunRefusals(t *testing.T) {
	ctx := context.Background()
	host := "classic.elb.amazonaws.com"
	o := Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: time.Second, Command: "oc dualstack"}

	kc := fake.NewClientset(withHost(gatewaySvc("istio-system", "gw", nil), host))
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{host: {Name: "aclassic", Type: "classic", IPAddressType: "ipv4", DNSName: host}}}
	_, err := runner(kc, lbs, &bytes.Buffer{}).Run(ctx, o)
	if !errors.Is(err, ErrClassic) || !strings.Contains(err.Error(), "--recreate") || !strings.Contains(err.Error(), host) {
		t.Fatalf("classic without --recreate: %v", err)
	}

	nlbHost := "nlb.elb.amazonaws.com"
	kc = fake.NewClientset(withHost(gatewaySvc("istio-system", "gw", map[string]string{AnnotationLBType: "nlb"}), nlbHost))
	lbs = &fakeLBs{lbs: map[string]*LoadBalancer{nlbHost: {Name: "anlb", Type: "network", IPAddressType: "ipv4", SubnetsWithoutIPv6: []string{"subnet-1"}}}}
	_, err = runner(kc, lbs, &bytes.Buffer{}).Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "oc dualstack aws apply") || !strings.Contains(err.Error(), "subnet-1") {
		t.Fatalf("subnets without IPv6: %v", err)
	}
	svc, _ := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{})
	if svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		t.Fatal("nothing may change when the underlay is missing")
	}
}

// The Service patch is recorded with its inverse before it is made, and
// Rollback puts every field it touched back exactly.
func TestPatchRecordedAndRolledBack(t *testing.T) {
	ctx := context.Background()
	host := "a1.elb.us-east-1.amazonaws.com"
	before := withHost(gatewaySvc("istio-system", "istio-ingressgateway", map[string]string{AnnotationLBType: "nlb", "helm": "keep"}), host)
	before.UID = "uid-1"
	before.Spec.ClusterIPs = []string{"172.30.0.10"}
	kc := fake.NewClientset(before.DeepCopy())
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{host: {Name: "a1", Type: "network", IPAddressType: "ipv4", DNSName: host}}}
	o := Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"}
	if _, err := runner(kc, lbs, &bytes.Buffer{}).Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	store := journal.NewStore(kc, "", "")
	j, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := j.Get("gateway/patch-service/istio-system/istio-ingressgateway")
	if !ok || e.State != journal.Done || !strings.Contains(e.Undo["inversePatch"], `"SingleStack"`) {
		t.Fatalf("journal entry %+v (found %v)", e, ok)
	}
	results, err := Rollback(ctx, kc, store, time.Second)
	if err != nil || len(results) != 1 || results[0].Status != "undone" {
		t.Fatalf("rollback: %+v %v", results, err)
	}
	after, _ := kc.CoreV1().Services("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	if *after.Spec.IPFamilyPolicy != *before.Spec.IPFamilyPolicy || len(after.Spec.IPFamilies) != 1 ||
		after.Annotations[AnnotationIPAddressType] != "" || after.Annotations[AnnotationLBType] != "nlb" || after.Annotations["helm"] != "keep" {
		t.Fatalf("after rollback: %+v %v", after.Spec, after.Annotations)
	}
	if _, has := after.Annotations[AnnotationIPAddressType]; has {
		t.Fatalf("the added annotation is still there: %v", after.Annotations)
	}
	// A second rollback finds nothing left to undo.
	if results, err := Rollback(ctx, kc, store, time.Second); err != nil || len(results) != 0 {
		t.Fatalf("second rollback: %+v %v", results, err)
	}
}

// A re-creation records the original before deleting it; rollback deletes
// the twin and creates the original again from the journal.
func TestRecreateRecordedAndRolledBack(t *testing.T) {
	ctx := context.Background()
	host := "classic.elb.amazonaws.com"
	orig := withHost(gatewaySvc("istio-system", "gw", map[string]string{"team": "edge"}), host)
	orig.UID = "uid-orig"
	kc := fake.NewClientset(orig.DeepCopy())
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{host: {Name: "aclassic", Type: "classic", IPAddressType: "ipv4", DNSName: host}}}
	o := Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 300 * time.Millisecond, Command: "kubectl dualstack", Recreate: true}
	res, err := runner(kc, lbs, &bytes.Buffer{}).Run(ctx, o)
	// No controller gives the fake's new Service a hostname: the wait for it times out, after the re-creation.
	if err == nil || !res.Changed || res.PreviousHostname != host {
		t.Fatalf("recreate: %+v %v", res, err)
	}
	store := journal.NewStore(kc, "", "")
	j, _ := store.Load(ctx)
	e, ok := j.Get("gateway/recreate-service/istio-system/gw")
	if !ok || e.State != journal.Done || !strings.Contains(e.Undo["original"], "team: edge") || strings.Contains(e.Undo["original"], "uid-orig") || strings.Contains(e.Undo["original"], "status:") || strings.Contains(e.Undo["original"], "clusterIP") {
		t.Fatalf("journal entry %+v", e)
	}
	now, _ := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{})
	if now.Annotations[AnnotationLBType] != "nlb" {
		t.Fatalf("re-created service: %v", now.Annotations)
	}
	now.UID = "uid-new" // the fake assigns none; the real apiserver does
	if _, err := kc.CoreV1().Services("istio-system").Update(ctx, now, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetState(ctx, e.ID, journal.Done, map[string]string{"replacementUID": "uid-new"}); err != nil {
		t.Fatal(err)
	}
	// No load-balancer controller runs here: the original comes back, and
	// rollback says it has no load balancer yet instead of calling it restored.
	results, err := Rollback(ctx, kc, store, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no load balancer yet") || len(results) != 1 || results[0].Status != "failed" {
		t.Fatalf("rollback: %+v %v", results, err)
	}
	back, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{})
	if err != nil || back.Annotations[AnnotationLBType] != "" || back.Annotations["team"] != "edge" || *back.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		t.Fatalf("after rollback: %v %+v", err, back)
	}
}
