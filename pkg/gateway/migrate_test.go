package gateway

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	dnsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

type fakeNames struct {
	from, to string
	applied  int
	// lbs, when set, learns the moved name (its DNS answers it).
	lbs *fakeLBs
	// none: no record leads to the old name (any more).
	none bool
}

func (f *fakeNames) PlanMoves(_ context.Context, from string, to *LoadBalancer, _ string) (*dnsx.MovePlan, string, error) {
	f.from, f.to = from, to.DNSName
	if f.none {
		return &dnsx.MovePlan{}, "no alias record leads to " + from, nil
	}
	p := &dnsx.MovePlan{Moves: []dnsx.Move{
		{Operation: dnsx.OpMoveAlias, ZoneName: "example.com.", Name: "shop.example.com.", Type: "A", From: from, To: to.DNSName},
		{Operation: dnsx.OpAddTwin, ZoneName: "example.com.", Name: "shop.example.com.", Type: "AAAA", To: to.DNSName},
	}}
	return p, "  zone example.com.: A alias shop.example.com.: " + from + " -> " + to.DNSName, nil
}

func (f *fakeNames) Prepare(context.Context) error { return nil }

func (f *fakeNames) ApplyMoves(context.Context) error {
	f.applied++
	if f.lbs != nil {
		if f.lbs.aliases == nil {
			f.lbs.aliases = map[string]string{}
		}
		f.lbs.aliases["shop.example.com"] = f.to
	}
	return nil
}

func TestMigratedKeepsTheOldServicesPorts(t *testing.T) {
	old := gatewaySvc("istio-system", "gw", map[string]string{"helm": "keep", ExternalDNSPrefix + "hostname": "shop.example.com"})
	n := Migrated(old, Want{Policy: corev1.IPFamilyPolicyRequireDualStack})
	if n.Name != "gw-dualstack" || n.Labels[LabelMigratedFrom] != "gw" || n.Labels["istio"] != "ingressgateway" {
		t.Errorf("metadata %+v", n.ObjectMeta)
	}
	if n.Spec.Ports[0].NodePort != 0 || n.Spec.HealthCheckNodePort != 0 || old.Spec.Ports[0].NodePort != 31380 {
		t.Errorf("nodePorts: new %+v, old %+v", n.Spec.Ports, old.Spec.Ports)
	}
	if n.Annotations[AnnotationLBType] != "nlb" || n.Annotations[AnnotationIPAddressType] != "dualstack" || n.Annotations["helm"] != "keep" {
		t.Errorf("annotations %v", n.Annotations)
	}
	if _, ok := n.Annotations[ExternalDNSPrefix+"hostname"]; ok {
		t.Error("the external-dns annotation is on the new Service before the names move")
	}
	if *n.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(n.Spec.IPFamilies) != 2 || n.Spec.Selector["istio"] != "ingressgateway" {
		t.Errorf("spec %+v", n.Spec)
	}
}

// The migration behind a Classic ELB: the new Service gets an NLB (the
// fake cloud gives it a hostname as it is created), made dualstack; the
// names and external-dns annotations move; the old one is retired; and
// rollback takes it all back, newest first.
func TestMigrateAndRollback(t *testing.T) {
	ctx := context.Background()
	oldHost, newHost := "classic-1.us-east-1.elb.amazonaws.com", "nlb-2.elb.us-east-1.amazonaws.com"
	kc, lbs := migrationWorld(oldHost, newHost)
	var shown bytes.Buffer
	r := runner(kc, lbs, &shown)
	names := &fakeNames{lbs: lbs}
	r.Names = names
	// Requests through the new load balancer, then through the moved name.
	var reached []string
	r.Reach = func(_ context.Context, family, addr, host string, port int32) error {
		reached = append(reached, fmt.Sprintf("%s %s:%d %s moved=%d", family, addr, port, host, names.applied))
		return nil
	}
	o := MigrateOptions{Options: Options{ServiceRef: "istio-system/gw", Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"},
		RetireOld: true, RetireAfter: 10 * time.Millisecond}

	// The plan changes nothing.
	dry := o
	dry.DryRun = cli.DryRunClient
	if _, err := r.Migrate(ctx, dry); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown.String(), "Service istio-system/gw-dualstack: create next to istio-system/gw") || names.applied != 0 {
		t.Fatalf("plan:\n%s", shown.String())
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the plan created the Service: %v", err)
	}

	res, err := r.Migrate(ctx, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, shown.String())
	}
	if res.Hostname != newHost || res.PreviousHostname != oldHost || len(res.IPv6) == 0 || lbs.set[0] != "nlb-2" {
		t.Errorf("result %+v, set %v", res, lbs.set)
	}
	if names.from != oldHost || names.to != newHost || names.applied != 1 {
		t.Errorf("names %+v", names)
	}
	wantReached := []string{
		"IPv4 " + newHost + ":80 " + newHost + " moved=0", "IPv6 " + newHost + ":80 " + newHost + " moved=0",
		"IPv4 shop.example.com:80 shop.example.com moved=1", "IPv6 shop.example.com:80 shop.example.com moved=1",
	}
	if !slices.Equal(reached, wantReached) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(reached, "\n"), strings.Join(wantReached, "\n"))
	}
	if len(res.Moves) != 2 || res.NamesMovedAt == nil {
		t.Errorf("the result should carry the moves and when: %+v", res)
	}
	for _, a := range res.Actions {
		if a.Status != "applied" && a.Status != "" {
			t.Errorf("action %+v", a)
		}
	}
	fresh, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw-dualstack", metav1.GetOptions{})
	if err != nil || fresh.Annotations[ExternalDNSPrefix+"hostname"] != "shop.example.com" {
		t.Fatalf("new Service %v %+v", err, fresh)
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old Service was not retired: %v", err)
	}
	jr, _ := r.Journal.Load(ctx)
	var ops []string
	for _, e := range jr.Layer(Layer) {
		ops = append(ops, e.Operation+"="+string(e.State))
	}
	if got := strings.Join(ops, " "); got != "migrate-service=done move-external-dns=done retire-service=done" {
		t.Errorf("journal: %s", got)
	}

	// Rollback: the old Service back (a new Classic ELB: the fake cloud
	// gives it a hostname), its annotations back, the new one deleted.
	kc.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service); svc.Name == "gw" {
			withHost(svc, "classic-3.us-east-1.elb.amazonaws.com")
		}
		return false, nil, nil
	})
	results, err := Rollback(ctx, kc, r.Journal, 5*time.Second)
	if err != nil {
		t.Fatalf("rollback: %v %+v", err, results)
	}
	back, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{})
	if err != nil || back.Annotations[ExternalDNSPrefix+"hostname"] != "shop.example.com" || back.Labels[LabelMigratedFrom] != "" {
		t.Errorf("old Service after rollback: %v %+v", err, back)
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new Service is still there: %v", err)
	}
	jr, _ = r.Journal.Load(ctx)
	for _, e := range jr.Layer(Layer) {
		if e.State != journal.Undone {
			t.Errorf("%s is %s", e.ID, e.State)
		}
	}
}

// migrationWorld: a gateway behind a Classic ELB with an external-dns
// name; the fake cloud gives gw-dualstack an NLB as it is created.
func migrationWorld(oldHost, newHost string) (*fake.Clientset, *fakeLBs) {
	old := withHost(gatewaySvc("istio-system", "gw", map[string]string{ExternalDNSPrefix + "hostname": "shop.example.com"}), oldHost)
	kc := fake.NewClientset(old)
	// The fake sends no initial events to a watch-list request: refuse
	// each wait's first watch, so that its reflector lists, then watches.
	var watches atomic.Int32
	kc.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if watches.Add(1)%2 == 1 {
			return true, nil, apierrors.NewBadRequest("no watch-list here")
		}
		w, err := kc.Tracker().Watch(a.GetResource(), a.GetNamespace())
		return true, w, err
	})
	kc.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service); svc.Name == "gw-dualstack" && len(a.(k8stesting.CreateActionImpl).CreateOptions.DryRun) == 0 {
			svc.UID = "u-new"
			withHost(svc, newHost)
		}
		return false, nil, nil
	})
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{
		oldHost: {Name: "classic-1", Type: "classic", IPAddressType: "ipv4", DNSName: oldHost},
		newHost: {Name: "nlb-2", Type: "network", IPAddressType: "ipv4", DNSName: newHost, CanonicalHostedZoneID: "Z26RNL4JYFTOTI"},
	}}
	return kc, lbs
}

// Without --retire-old both serve; the gateway is the new Service from
// then on, and --retire deletes the old one.
func TestMigrateThenRetire(t *testing.T) {
	ctx := context.Background()
	oldHost, newHost := "classic-1.us-east-1.elb.amazonaws.com", "nlb-2.elb.us-east-1.amazonaws.com"
	kc, lbs := migrationWorld(oldHost, newHost)
	var shown bytes.Buffer
	r := runner(kc, lbs, &shown) // no Names: the records to change are printed
	o := Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"}
	if _, err := r.Retire(ctx, o); cli.ExitCode(err) != cli.ExitBadUsage {
		t.Errorf("retire before any migration: %v", err)
	}
	// --retire-old without Route 53: the records are the user's to change,
	// so the old Service stays.
	res, err := r.Migrate(ctx, MigrateOptions{Options: o, RetireOld: true, RetireAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Actions {
		if a.Kind == OpRetireService && a.Status != "skipped" {
			t.Errorf("retire without moved records: %+v", a)
		}
	}
	if !strings.Contains(shown.String(), "Point every DNS record that leads to "+oldHost+" at "+newHost) {
		t.Errorf("no records to change printed:\n%s", shown.String())
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); err != nil {
		t.Fatalf("the old Service was retired though no record was moved: %v", err)
	}
	svc, err := Find(ctx, kc, "", "kubectl dualstack gateway")
	if err != nil || svc.Name != "gw-dualstack" {
		t.Fatalf("Find after the migration: %v %v", svc, err)
	}
	res, err = r.Retire(ctx, o)
	if err != nil || !res.Changed || res.Hostname != newHost {
		t.Fatalf("retire: %+v %v", res, err)
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("not retired: %v", err)
	}
	if res, err := r.Retire(ctx, o); err != nil || res.Actions[0].Status != "unchanged" {
		t.Errorf("second retire: %+v %v", res, err)
	}
}

func TestMigrateRefusesWhatItCannotMigrate(t *testing.T) {
	ctx := context.Background()
	host := "nlb.elb.us-east-1.amazonaws.com"
	kc := fake.NewClientset(withHost(gatewaySvc("istio-system", "gw", nil), host))
	lbs := &fakeLBs{lbs: map[string]*LoadBalancer{host: {Name: "nlb", Type: "network", IPAddressType: "ipv4", DNSName: host}}}
	var shown bytes.Buffer
	o := MigrateOptions{Options: Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: time.Second, Command: "kubectl dualstack"}}
	_, err := runner(kc, lbs, &shown).Migrate(ctx, o)
	if cli.ExitCode(err) != cli.ExitBadUsage || !strings.Contains(err.Error(), "not a Classic ELB") {
		t.Errorf("an NLB gateway: %v", err)
	}
	// A Service by the new name that is not ours.
	classic := "c.us-east-1.elb.amazonaws.com"
	other := gatewaySvc("istio-system", "gw-dualstack", nil)
	other.Labels = nil
	kc = fake.NewClientset(withHost(gatewaySvc("istio-system", "gw", nil), classic), other)
	lbs = &fakeLBs{lbs: map[string]*LoadBalancer{classic: {Name: "c", Type: "classic", IPAddressType: "ipv4", DNSName: classic}}}
	_, err = runner(kc, lbs, &shown).Migrate(ctx, o)
	if cli.ExitCode(err) != cli.ExitBadUsage || !strings.Contains(err.Error(), "is not a migration of") {
		t.Errorf("a foreign gw-dualstack: %v", err)
	}
	if shown.Len() != 0 {
		t.Errorf("a plan was shown before refusing:\n%s", shown.String())
	}
}

// TestMigrateMovesNoNameUntilTheNLBAnswersBothFamilies: the new load
// balancer answers IPv4 but not IPv6: no record moves, the old Service
// stays, and the error says both serve and how to go on.
func TestMigrateMovesNoNameUntilTheNLBAnswersBothFamilies(t *testing.T) {
	ctx := context.Background()
	oldHost, newHost := "classic-1.us-east-1.elb.amazonaws.com", "nlb-2.elb.us-east-1.amazonaws.com"
	kc, lbs := migrationWorld(oldHost, newHost)
	var shown bytes.Buffer
	r := runner(kc, lbs, &shown)
	names := &fakeNames{lbs: lbs}
	r.Names = names
	asked := 0
	r.Reach = func(_ context.Context, family, _, _ string, _ int32) error {
		asked++
		if family == "IPv6" {
			return fmt.Errorf("dial tcp6: connection refused")
		}
		return nil
	}
	_, err := r.Migrate(ctx, MigrateOptions{Options: Options{ServiceRef: "istio-system/gw", Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 1500 * time.Millisecond, Command: "kubectl dualstack"},
		RetireOld: true})
	if err == nil || !strings.Contains(err.Error(), "no IPv6 answer from the new load balancer") || !strings.Contains(err.Error(), "still serves the names") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("want an error saying the NLB gave no IPv6 answer, got %v", err)
	}
	if names.applied != 0 || asked < 2 {
		t.Errorf("records moved %d times; %d requests", names.applied, asked)
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); err != nil {
		t.Errorf("the old Service: %v", err)
	}
}

// TestMigrateAgainAfterTheNamesMoved: a re-run finds no record at the old
// name because an earlier run moved them (the journal says so): it says
// that, not "change them by hand", and --retire-old goes on.
func TestMigrateAgainAfterTheNamesMoved(t *testing.T) {
	ctx := context.Background()
	oldHost, newHost := "classic-1.us-east-1.elb.amazonaws.com", "nlb-2.elb.us-east-1.amazonaws.com"
	kc, lbs := migrationWorld(oldHost, newHost)
	lbs.aliases = map[string]string{"shop.example.com": newHost}
	var shown bytes.Buffer
	r := runner(kc, lbs, &shown)
	r.Names = &fakeNames{none: true}
	if err := r.Journal.PutAll(ctx, []journal.Entry{{ID: "dns-move/Z/shop.example.com./A", Layer: dnsx.MoveLayer, Operation: dnsx.OpMoveAlias,
		Resource: "shop.example.com. A", State: journal.Done, Undo: map[string]string{"zoneId": "Z", "zoneName": "example.com.", "to": newHost + "."}}}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Migrate(ctx, MigrateOptions{Options: Options{ServiceRef: "istio-system/gw", Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"},
		RetireOld: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, shown.String())
	}
	if !strings.Contains(shown.String(), "1 record(s) were moved to "+newHost+" by an earlier run") || strings.Contains(shown.String(), "no alias record leads to") {
		t.Errorf("shown:\n%s", shown.String())
	}
	if len(res.Moves) != 1 || res.Moves[0].Name != "shop.example.com." {
		t.Errorf("moves %+v", res.Moves)
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old Service was not retired: %v", err)
	}
}

// TestMigrateResumesFromTheNewService: with no --ingress-service, the
// gateway found after a first run is the new Service; a re-run goes on
// from the old one (here: retires it), and a run after that has nothing to do.
func TestMigrateResumesFromTheNewService(t *testing.T) {
	ctx := context.Background()
	oldHost, newHost := "classic-1.us-east-1.elb.amazonaws.com", "nlb-2.elb.us-east-1.amazonaws.com"
	kc, lbs := migrationWorld(oldHost, newHost)
	var shown bytes.Buffer
	r := runner(kc, lbs, &shown)
	names := &fakeNames{lbs: lbs}
	r.Names = names
	o := MigrateOptions{Options: Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Timeout: 5 * time.Second, Command: "kubectl dualstack"}}
	if _, err := r.Migrate(ctx, o); err != nil {
		t.Fatalf("first run: %v\n%s", err, shown.String())
	}
	o.RetireOld = true
	shown.Reset()
	res, err := r.Migrate(ctx, o)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, shown.String())
	}
	if res.Service != "istio-system/gw" || !strings.Contains(shown.String(), "created by an earlier run") {
		t.Errorf("second run: %+v\n%s", res, shown.String())
	}
	if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "gw", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old Service was not retired: %v", err)
	}
	res, err = r.Migrate(ctx, o)
	if err != nil || len(res.Actions) != 1 || res.Actions[0].Status != "unchanged" || !strings.Contains(res.Actions[0].Detail, "retired") {
		t.Errorf("third run: %v %+v", err, res)
	}
}
