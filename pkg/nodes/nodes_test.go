package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

func plan(t *testing.T, c *Converter) *Plan {
	t.Helper()
	p, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Plain data: it survives a JSON round trip (the engine saves plans)
	// with the texts byte for byte.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if p.Cloud != nil && (back.Cloud.Original != p.Cloud.Original || back.Cloud.New != p.Cloud.New) {
		t.Fatalf("the plan's texts did not survive JSON")
	}
	back.Options.ENIIPv6 = c.Options.ENIIPv6 // not serialised: the engine passes it again
	return &back
}

func TestPlanOpenShift(t *testing.T) {
	orig := readTestdata(t, "openshift-serviceoverride.conf")
	f := newFakeAPI(t, ocpCM(orig), mkNode("ip-10-0-1-10", "10.0.1.10"), mkNode("ip-10-0-2-20", "10.0.2.20"))
	p := plan(t, &Converter{Kube: f})
	if p.Action != ActionChange || !p.OpenShift || p.Blocker != "" {
		t.Fatalf("plan: %+v", p)
	}
	cp := p.Cloud
	if cp.Source != SourceOpenShift || cp.ConfigMapRef != (ConfigMapRef{OpenShiftNamespace, OpenShiftName, OpenShiftKey}) || !cp.KeyPresent {
		t.Errorf("cloud config: %+v", cp.ConfigMapRef)
	}
	if cp.Current != nil || !slices.Equal(cp.Target, []string{"ipv4", "ipv6"}) || !cp.Change {
		t.Errorf("families %q -> %q", cp.Current, cp.Target)
	}
	if cp.Original != orig || cp.New != readTestdata(t, "openshift-serviceoverride.golden") {
		t.Errorf("texts: %q -> %q", cp.Original, cp.New)
	}
	if len(cp.Diff) != 3 || cp.Diff[1] != "+NodeIPFamilies = ipv4" {
		t.Errorf("diff: %q", cp.Diff)
	}
	if p.Restart != nil {
		t.Errorf("on OpenShift the operator rolls the CCM; the plan restarts %v", p.Restart)
	}
	if cp.Downstream == nil || cp.Downstream.Name != OpenShiftCCMConfigMap {
		t.Errorf("downstream: %v", cp.Downstream)
	}
	if len(p.Nodes) != 2 || p.NodesDone != 0 || p.HostChanges != 0 || p.Nodes[0].Addresses != AddressesCloud {
		t.Errorf("nodes: %+v", p.Nodes)
	}
	if !strings.Contains(p.Summary, "add NodeIPFamilies ipv4,ipv6 to openshift-config/cloud-provider-config [config] (now unset: ipv4 only)") {
		t.Errorf("summary: %s", p.Summary)
	}
	if f.configUpdates() != 0 {
		t.Error("Plan wrote something")
	}
}

// TestRoundTrip applies and rolls back each test config: the ConfigMap
// holds the golden text after Apply, the original bytes after Rollback; a
// second Apply of a fresh plan changes nothing.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"openshift-serviceoverride", "crlf", "no-trailing-newline", "no-global", "ipv4-only", "installer-ipv4"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			orig, want := readTestdata(t, name+".conf"), readTestdata(t, name+".golden")
			f := newFakeAPI(t, ocpCM(orig), mkNode("n1", "10.0.0.1"))
			js := journal.NewStore(f, "", "")
			c := &Converter{Kube: f, Journal: js}
			p := plan(t, c)
			res, err := c.Apply(ctx, p)
			if err != nil || !res.Changed {
				t.Fatalf("Apply: %+v, %v", res, err)
			}
			if got := f.configMap(t, OpenShiftNamespace, OpenShiftName).Data[OpenShiftKey]; got != want {
				t.Fatalf("after Apply:\n got %q\nwant %q", got, want)
			}
			j, _ := js.Load(ctx)
			e, ok := j.Get(entryID(p.Cloud.ConfigMapRef))
			if !ok || e.State != journal.Done || e.Layer != Layer || e.Undo["original"] != orig || e.Undo["applied"] != want {
				t.Fatalf("journal entry: %+v", e)
			}

			// Idempotent: a new plan has nothing to change; applying it writes nothing.
			p2 := plan(t, c)
			if p2.Action != ActionWait || p2.Cloud.Change {
				t.Fatalf("second plan: %s %+v", p2.Action, p2.Cloud)
			}
			before := f.configUpdates()
			if res, err := c.Apply(ctx, p2); err != nil || res.Changed {
				t.Fatalf("second Apply: %+v, %v", res, err)
			}
			// The first plan again (a re-run after an interruption): already done.
			if res, err := c.Apply(ctx, p); err != nil || !res.Already || res.Changed {
				t.Fatalf("re-applying the first plan: %+v, %v", res, err)
			}
			if f.configUpdates() != before {
				t.Fatal("an idempotent Apply wrote the ConfigMap")
			}

			results, err := Rollback(ctx, f, js)
			if err != nil || len(results) != 1 || results[0].Status != "undone" {
				t.Fatalf("Rollback: %+v, %v", results, err)
			}
			if got := f.configMap(t, OpenShiftNamespace, OpenShiftName).Data[OpenShiftKey]; got != orig {
				t.Fatalf("after Rollback:\n got %q\nwant %q", got, orig)
			}
			// A second rollback finds nothing left to undo.
			if results, err := Rollback(ctx, f, js); err != nil || len(results) != 0 {
				t.Fatalf("second Rollback: %+v, %v", results, err)
			}
		})
	}
}

func TestAlreadyDualStack(t *testing.T) {
	f := newFakeAPI(t, ocpCM(readTestdata(t, "both.conf")), mkNode("n1", "10.0.0.1", "2600:1f18::1"), mkNode("n2", "10.0.0.2"))
	c := &Converter{Kube: f, Journal: journal.NewStore(f, "", "")}
	p := plan(t, c)
	if p.Action != ActionWait || p.Cloud.Change || p.NodesDone != 1 {
		t.Fatalf("plan: %s %+v done %d", p.Action, p.Cloud, p.NodesDone)
	}
	f2 := newFakeAPI(t, ocpCM(readTestdata(t, "both.conf")), mkNode("n1", "10.0.0.1", "2600:1f18::1"))
	p2 := plan(t, &Converter{Kube: f2})
	if p2.Action != ActionNothing || !strings.Contains(p2.Summary, "all 1 nodes") {
		t.Fatalf("plan: %s %s", p2.Action, p2.Summary)
	}
	if res, err := c.Apply(context.Background(), p); err != nil || res.Changed || f.configUpdates() != 0 {
		t.Fatalf("Apply of a no-change plan: %+v, %v", res, err)
	}
}

// TestApplyConflict: a cloud config changed after the plan is never
// overwritten, whether the change is seen before the update or only by the
// apiserver's resourceVersion check.
func TestApplyConflict(t *testing.T) {
	ctx := context.Background()
	orig := readTestdata(t, "installer-ipv4.conf")
	theirs := "[Global]\nNodeIPFamilies=ipv4\nRegion=us-east-2\n"

	t.Run("seen before the update", func(t *testing.T) {
		f := newFakeAPI(t, ocpCM(orig), mkNode("n1", "10.0.0.1"))
		js := journal.NewStore(f, "", "")
		c := &Converter{Kube: f, Journal: js}
		p := plan(t, c)
		f.someoneEdits(t, OpenShiftNamespace, OpenShiftName, func(cm *corev1.ConfigMap) { cm.Data[OpenShiftKey] = theirs })
		_, err := c.Apply(ctx, p)
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("Apply: %v, want ErrChanged", err)
		}
		if got := f.configMap(t, OpenShiftNamespace, OpenShiftName).Data[OpenShiftKey]; got != theirs {
			t.Fatalf("overwritten: %q", got)
		}
		if j, _ := js.Load(ctx); len(j.Entries) != 0 {
			t.Errorf("journal: %+v", j.Entries)
		}
		// Planned again, it adds to their text.
		p2 := plan(t, c)
		if res, err := c.Apply(ctx, p2); err != nil || !res.Changed {
			t.Fatalf("Apply after re-planning: %+v, %v", res, err)
		}
		if got := f.configMap(t, OpenShiftNamespace, OpenShiftName).Data[OpenShiftKey]; got != "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\nRegion=us-east-2\n" {
			t.Fatalf("after re-planning: %q", got)
		}
	})

	t.Run("refused by the apiserver", func(t *testing.T) {
		f := newFakeAPI(t, ocpCM(orig), mkNode("n1", "10.0.0.1"))
		js := journal.NewStore(f, "", "")
		c := &Converter{Kube: f, Journal: js}
		p := plan(t, c)
		// The journal is written first (it has its own ConfigMap); then, as
		// the cloud config's update is on its way, someone else's lands.
		if _, err := js.Load(ctx); err != nil {
			t.Fatal(err)
		}
		armed := false
		f.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if !armed && a.GetNamespace() == OpenShiftNamespace {
				armed = true
				f.someoneEdits(t, OpenShiftNamespace, OpenShiftName, func(cm *corev1.ConfigMap) { cm.Data[OpenShiftKey] = theirs })
			}
			return false, nil, nil
		})
		_, err := c.Apply(ctx, p)
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("Apply: %v, want ErrChanged", err)
		}
		if got := f.configMap(t, OpenShiftNamespace, OpenShiftName).Data[OpenShiftKey]; got != theirs {
			t.Fatalf("overwritten: %q", got)
		}
		j, _ := js.Load(ctx)
		e, ok := j.Get(entryID(p.Cloud.ConfigMapRef))
		if !ok || e.State != journal.Failed || e.Undo["notMade"] == "" {
			t.Fatalf("journal entry: %+v", e)
		}
		// Nothing for rollback to do.
		if res, err := Rollback(ctx, f, js); err != nil || len(res) != 0 {
			t.Fatalf("Rollback: %+v, %v", res, err)
		}
	})
}

// TestRollbackLeavesOthersChanges: rollback restores only what still holds
// the tool's text.
func TestRollbackLeavesOthersChanges(t *testing.T) {
	ctx := context.Background()
	orig := readTestdata(t, "ipv4-only.conf")
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, f *fakeAPI)
		want   string
	}{
		{"edited", func(t *testing.T, f *fakeAPI) {
			f.someoneEdits(t, OpenShiftNamespace, OpenShiftName, func(cm *corev1.ConfigMap) { cm.Data[OpenShiftKey] += "Region = x\n" })
		}, "changed by someone else since"},
		{"key removed", func(t *testing.T, f *fakeAPI) {
			f.someoneEdits(t, OpenShiftNamespace, OpenShiftName, func(cm *corev1.ConfigMap) { delete(cm.Data, OpenShiftKey) })
		}, "changed by someone else since"},
		{"deleted", func(t *testing.T, f *fakeAPI) {
			if err := f.CoreV1().ConfigMaps(OpenShiftNamespace).Delete(ctx, OpenShiftName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "no longer exists"},
		{"re-created", func(t *testing.T, f *fakeAPI) {
			_ = f.CoreV1().ConfigMaps(OpenShiftNamespace).Delete(ctx, OpenShiftName, metav1.DeleteOptions{})
			cm := ocpCM(readTestdata(t, "ipv4-only.golden"))
			cm.UID = "another"
			if _, err := f.CoreV1().ConfigMaps(OpenShiftNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "re-created since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, ocpCM(orig), mkNode("n1", "10.0.0.1"))
			js := journal.NewStore(f, "", "")
			c := &Converter{Kube: f, Journal: js}
			if _, err := c.Apply(ctx, plan(t, c)); err != nil {
				t.Fatal(err)
			}
			tc.change(t, f)
			var before *corev1.ConfigMap
			if o, err := f.CoreV1().ConfigMaps(OpenShiftNamespace).Get(ctx, OpenShiftName, metav1.GetOptions{}); err == nil {
				before = o
			}
			res, err := Rollback(ctx, f, js)
			if err != nil || len(res) != 1 || res[0].Status != "skipped" || !strings.Contains(res[0].Message, tc.want) {
				t.Fatalf("Rollback: %+v, %v; want skipped with %q", res, err, tc.want)
			}
			if before != nil {
				after := f.configMap(t, OpenShiftNamespace, OpenShiftName)
				if after.ResourceVersion != before.ResourceVersion {
					t.Fatal("rollback wrote a ConfigMap someone else had changed")
				}
			}
		})
	}
}

// TestKubeadmCCM: no OpenShift; the CCM DaemonSet's --cloud-config leads
// to the ConfigMap key behind it; Apply restarts the DaemonSet, and so
// does Rollback once the text is back.
func TestKubeadmCCM(t *testing.T) {
	ctx := context.Background()
	orig := "[Global]\nKubernetesClusterID=kube-prod\n"
	mount := corev1.VolumeMount{Name: "cloud-config", MountPath: "/etc/kubernetes/cloud-config.conf", SubPath: "cloud-config.conf"}
	f := newFakeAPI(t,
		mkCM("kube-system", "cloud-config", map[string]string{"cloud-config.conf": orig}),
		mkCM("kube-system", "coredns", map[string]string{"Corefile": "."}),
		ccmDaemonSet(cmVolume("cloud-config", "cloud-config"), mount, "/etc/kubernetes/cloud-config.conf"),
		mkNode("n1", "10.0.0.1"))
	js := journal.NewStore(f, "", "")
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	c := &Converter{Kube: f, Journal: js, Now: func() time.Time { return at }}
	p := plan(t, c)
	if p.OpenShift || p.Cloud == nil || p.Cloud.Source != SourceCCMWorkload ||
		p.Cloud.ConfigMapRef != (ConfigMapRef{"kube-system", "cloud-config", "cloud-config.conf"}) {
		t.Fatalf("plan: %+v %+v", p, p.Cloud)
	}
	if p.Restart == nil || *p.Restart != (Workload{"DaemonSet", "kube-system", "aws-cloud-controller-manager"}) {
		t.Fatalf("restart: %v", p.Restart)
	}
	res, err := c.Apply(ctx, p)
	if err != nil || !res.Changed || res.Restarted == nil {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	ds, _ := f.AppsV1().DaemonSets("kube-system").Get(ctx, "aws-cloud-controller-manager", metav1.GetOptions{})
	if got := ds.Spec.Template.Annotations[restartedAtAnnotation]; got != "2026-11-03T10:00:00Z" {
		t.Fatalf("restartedAt = %q", got)
	}
	j, _ := js.Load(ctx)
	if len(j.Entries) != 2 || j.Entries[1].Operation != OpRestartCCM || j.Entries[1].State != journal.Done {
		t.Fatalf("journal: %+v", j.Entries)
	}
	results, err := Rollback(ctx, f, js)
	if err != nil || len(results) != 2 || results[0].Status != "undone" || results[1].Status != "undone" {
		t.Fatalf("Rollback: %+v, %v", results, err)
	}
	if got := f.configMap(t, "kube-system", "cloud-config").Data["cloud-config.conf"]; got != orig {
		t.Fatalf("after rollback: %q", got)
	}
	ds, _ = f.AppsV1().DaemonSets("kube-system").Get(ctx, "aws-cloud-controller-manager", metav1.GetOptions{})
	if got := ds.Spec.Template.Annotations[restartedAtAnnotation]; got == "2026-11-03T10:00:00Z" || got == "" {
		t.Fatalf("rollback did not restart the CCM: restartedAt = %q", got)
	}
}

func TestLocateCCMVolumes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		volume  corev1.Volume
		mount   corev1.VolumeMount
		flag    string
		want    ConfigMapRef
		blocker string
	}{
		{"directory mount with items", cmVolume("cfg", "aws-cloud-config", corev1.KeyToPath{Key: "config", Path: "cloud.conf"}),
			corev1.VolumeMount{Name: "cfg", MountPath: "/etc/aws/"}, "/etc/aws/cloud.conf",
			ConfigMapRef{"kube-system", "aws-cloud-config", "config"}, ""},
		{"directory mount, key is the file name", cmVolume("cfg", "cloud-config"),
			corev1.VolumeMount{Name: "cfg", MountPath: "/etc/kubernetes/cloud"}, "/etc/kubernetes/cloud/cloud.conf",
			ConfigMapRef{"kube-system", "cloud-config", "cloud.conf"}, ""},
		{"host file", corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc/kubernetes"}}},
			corev1.VolumeMount{Name: "host", MountPath: "/etc/kubernetes"}, "/etc/kubernetes/cloud.config",
			ConfigMapRef{}, "reads its cloud config from the host file /etc/kubernetes/cloud.config"},
		{"missing ConfigMap", cmVolume("cfg", "nope"),
			corev1.VolumeMount{Name: "cfg", MountPath: "/etc/aws"}, "/etc/aws/cloud.conf",
			ConfigMapRef{}, "mounts the ConfigMap kube-system/nope, which does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t,
				mkCM("kube-system", "aws-cloud-config", map[string]string{"config": "[Global]\n"}),
				mkCM("kube-system", "cloud-config", map[string]string{"cloud.conf": "[Global]\n", "other": ""}),
				ccmDaemonSet(tc.volume, tc.mount, tc.flag), mkNode("n1", "10.0.0.1"))
			p := plan(t, &Converter{Kube: f})
			if tc.blocker != "" {
				if p.Action != ActionBlocked || !strings.Contains(p.Blocker, tc.blocker) {
					t.Fatalf("plan: %s %q", p.Action, p.Blocker)
				}
				return
			}
			if p.Cloud == nil || p.Cloud.ConfigMapRef != tc.want {
				t.Fatalf("cloud config: %+v (blocker %q)", p.Cloud, p.Blocker)
			}
		})
	}
}

func TestNoCloudConfig(t *testing.T) {
	// Nodes from the cloud provider, but no cloud config anywhere.
	f := newFakeAPI(t, mkNode("n1", "10.0.0.1"))
	p := plan(t, &Converter{Kube: f})
	if p.Action != ActionBlocked || !strings.Contains(p.Blocker, "no cloud config ConfigMap was found") {
		t.Fatalf("plan: %s %q", p.Action, p.Blocker)
	}
	if _, err := (&Converter{Kube: f, Journal: journal.NewStore(f, "", "")}).Apply(context.Background(), p); err == nil {
		t.Fatal("a blocked plan was applied")
	}
	// OpenShift without its ConfigMap.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OpenShiftNamespace}}
	p = plan(t, &Converter{Kube: newFakeAPI(t, ns, mkNode("n1", "10.0.0.1"))})
	if p.Action != ActionBlocked || !p.OpenShift || !strings.Contains(p.Blocker, "spec.cloudConfig") {
		t.Fatalf("plan: %s %q", p.Action, p.Blocker)
	}
	// Kubelet-chosen addresses (no cloud provider): the cloud config does
	// not matter; each node needs --node-ip.
	n := mkNode("n1", "10.0.0.1")
	n.Spec.ProviderID = ""
	p = plan(t, &Converter{Kube: newFakeAPI(t, n), Options: Options{ENIIPv6: map[string][]string{"n1": {"2600:1f18::a"}}}})
	if p.Action != ActionWait || p.HostChanges != 1 || !strings.Contains(p.Nodes[0].HostChange, "--node-ip=10.0.0.1,2600:1f18::a") {
		t.Fatalf("plan: %s %+v", p.Action, p.Nodes)
	}
}

func TestProvidedNodeIP(t *testing.T) {
	f := newFakeAPI(t, ocpCM("[Global]\n"),
		annotated(mkNode("a", "10.0.0.1"), "10.0.0.1"),
		annotated(mkNode("b", "10.0.0.2"), "10.0.0.2,2600:1f18::2"),
		mkNode("c", "10.0.0.3"))
	eni := map[string][]string{"a": {"2600:1f18::1"}, "b": {"2600:1f18::2"}, "c": {"2600:1f18::3"}}
	p := plan(t, &Converter{Kube: f, Options: Options{ENIIPv6: eni}})
	byName := map[string]NodeView{}
	for _, n := range p.Nodes {
		byName[n.Name] = n
	}
	if a := byName["a"]; a.Addresses != AddressesNodeIP || !strings.Contains(a.HostChange, "--node-ip=10.0.0.1,2600:1f18::1") {
		t.Errorf("a: %+v", a)
	}
	if b := byName["b"]; b.Addresses != AddressesNodeIP || b.HostChange != "" {
		t.Errorf("b: %+v", b)
	}
	if c := byName["c"]; c.Addresses != AddressesCloud || c.HostChange != "" {
		t.Errorf("c: %+v", c)
	}
	if p.HostChanges != 1 || p.Action != ActionChange || !strings.Contains(p.Summary, "1 also need their kubelet's --node-ip changed") {
		t.Errorf("plan: %s %d %s", p.Action, p.HostChanges, p.Summary)
	}
}

func TestBadInput(t *testing.T) {
	f := newFakeAPI(t, mkNode("n1", "10.0.0.1"))
	for _, o := range []Options{
		{CloudConfig: ConfigMapRef{Namespace: "kube-system", Name: "cloud-config"}},
		{Timeout: -time.Second},
		{ENIIPv6: map[string][]string{"n1": {"10.0.0.9"}}},
		{ENIIPv6: map[string][]string{"n1": {"2600::/64"}}},
		{CloudConfig: ConfigMapRef{Namespace: "kube-system", Name: "nope", Key: "cloud.conf"}}, // does not exist
	} {
		_, err := (&Converter{Kube: f, Options: o}).Plan(context.Background())
		var ue *cli.UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%+v: %v, want a usage error", o, err)
		}
	}
	// A value the CCM does not know, and a file it cannot read safely.
	for text, want := range map[string]string{
		"[Global]\nNodeIPFamilies = IPv6\n": `"IPv6", which cloud-provider-aws does not recognise`,
		"[Global]\nZone = \"us-east-1a\n":   "closing quote",
	} {
		p := plan(t, &Converter{Kube: newFakeAPI(t, ocpCM(text), mkNode("n1", "10.0.0.1"))})
		if p.Action != ActionBlocked || !strings.Contains(p.Blocker, want) {
			t.Errorf("%q: %s %q", text, p.Action, p.Blocker)
		}
	}
	// A key the ConfigMap lacks, named by option: added, then removed.
	ctx := context.Background()
	f = newFakeAPI(t, mkCM("kube-system", "aws", map[string]string{"other": "x"}), mkNode("n1", "10.0.0.1"))
	js := journal.NewStore(f, "", "")
	c := &Converter{Kube: f, Journal: js, Options: Options{CloudConfig: ConfigMapRef{"kube-system", "aws", "cloud.conf"}}}
	p := plan(t, c)
	if p.Cloud.KeyPresent || !p.Cloud.Change {
		t.Fatalf("plan: %+v", p.Cloud)
	}
	if _, err := c.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := f.configMap(t, "kube-system", "aws").Data["cloud.conf"]; got != "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n" {
		t.Fatalf("added: %q", got)
	}
	if _, err := Rollback(ctx, f, js); err != nil {
		t.Fatal(err)
	}
	if d := f.configMap(t, "kube-system", "aws").Data; len(d) != 1 || d["other"] != "x" {
		t.Fatalf("after rollback: %q", d)
	}
}

func setIPv6(t *testing.T, f *fakeAPI, name, v6 string) {
	t.Helper()
	n, err := f.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: v6})
	if _, err := f.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitOpened(t *testing.T, f *fakeAPI) {
	t.Helper()
	select {
	case <-f.opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait never opened a watch")
	}
}

// TestWait follows watch events until every node has IPv6, reporting
// progress as nodes come.
func TestWait(t *testing.T) {
	f := newFakeAPI(t, ocpCM("[Global]\n"), mkNode("a", "10.0.0.1"), mkNode("b", "10.0.0.2"))
	var mu sync.Mutex
	var msgs []string
	first := make(chan struct{})
	c := &Converter{Kube: f, Options: Options{Timeout: 30 * time.Second, ENIIPv6: map[string][]string{"a": {"2600:1f18::1"}, "b": {"2600:1f18::2"}}},
		Progress: func(m string) {
			mu.Lock()
			defer mu.Unlock()
			if msgs = append(msgs, m); len(msgs) == 1 {
				close(first)
			}
		}}
	p := plan(t, c)
	done := make(chan error, 1)
	var res *WaitResult
	go func() {
		var err error
		res, err = c.Wait(context.Background(), p)
		done <- err
	}()
	waitOpened(t, f)
	// The first count, from the list, before any node changes (kube.Wait
	// replays the listed objects as events after its first check, so a
	// change made earlier could be counted, then uncounted).
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("no progress")
	}
	setIPv6(t, f, "a", "2600:1f18::1")
	// b reports an IPv6 address that is not its ENI's: not done yet.
	setIPv6(t, f, "b", "fd00::99")
	select {
	case err := <-done:
		t.Fatalf("the wait ended before b had its ENI's address: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	setIPv6(t, f, "b", "2600:1f18::2")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the wait did not end")
	}
	if res.Done != 2 || res.Total != 2 || len(res.Pending()) != 0 {
		t.Errorf("result: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(msgs, []string{"0 of 2 nodes have IPv6", "1 of 2 nodes have IPv6", "2 of 2 nodes have IPv6"}) {
		t.Errorf("progress: %q", msgs)
	}
}

// TestWaitTimeoutCauses: after the timeout each lagging node is named with
// its likeliest cause.
func TestWaitTimeoutCauses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		downstream string // the CCM's copy on OpenShift; "" none
		want       map[string]string
	}{
		{"flattened by the operator", "[Global]\nNodeIPFamilies = ipv4,ipv6\n", map[string]string{
			"eni-none": "its primary ENI has no IPv6 address",
			"node-ip":  "--node-ip=10.0.0.2,2600:1f18::2",
			"cloud":    `flattened to "ipv4,ipv6"`,
			"wrong":    "but its primary ENI has 2600:1f18::4",
		}},
		{"not synced yet", "[Global]\nNodeIPFamilies=ipv4\n", map[string]string{
			"cloud": "does not list ipv6 yet",
		}},
		{"synced, CCM lags", "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n", map[string]string{
			"cloud": "delete pod -l k8s-app=aws-cloud-controller-manager",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := []runtime.Object{ocpCM(readTestdata(t, "both.conf")),
				mkNode("eni-none", "10.0.0.1"), annotated(mkNode("node-ip", "10.0.0.2"), "10.0.0.2"),
				mkNode("cloud", "10.0.0.3"), mkNode("wrong", "10.0.0.4", "fd00::4"), mkNode("ok", "10.0.0.5", "2600:1f18::5")}
			if tc.downstream != "" {
				objs = append(objs, mkCM(OpenShiftCCMNamespace, OpenShiftCCMConfigMap, map[string]string{OpenShiftCCMKey: tc.downstream}))
			}
			eni := map[string][]string{"eni-none": nil, "node-ip": {"2600:1f18::2"}, "cloud": {"2600:1f18::3"}, "wrong": {"2600:1f18::4"}, "ok": {"2600:1f18::5"}}
			c := &Converter{Kube: newFakeAPI(t, objs...), Options: Options{Timeout: 300 * time.Millisecond, ENIIPv6: eni}}
			p := plan(t, c)
			res, err := c.Wait(context.Background(), p)
			var te *kube.TimeoutError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), "4 of 5 nodes have no IPv6 InternalIP") {
				t.Fatalf("Wait: %v", err)
			}
			causes := map[string]string{}
			for _, n := range res.Pending() {
				causes[n.Name] = n.Cause
			}
			if _, ok := causes["ok"]; ok || len(causes) != 4 {
				t.Errorf("pending: %v", causes)
			}
			for node, want := range tc.want {
				if !strings.Contains(causes[node], want) {
					t.Errorf("%s: cause %q, want %q", node, causes[node], want)
				}
			}
		})
	}
	// Elsewhere: the restart command of the CCM found.
	mount := corev1.VolumeMount{Name: "cfg", MountPath: "/etc/kubernetes/cloud-config.conf", SubPath: "cloud-config.conf"}
	f := newFakeAPI(t, mkCM("kube-system", "cloud-config", map[string]string{"cloud-config.conf": "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n"}),
		ccmDaemonSet(cmVolume("cfg", "cloud-config"), mount, "/etc/kubernetes/cloud-config.conf"), mkNode("n1", "10.0.0.1"))
	c := &Converter{Kube: f, Options: Options{Timeout: 200 * time.Millisecond}}
	res, err := c.Wait(context.Background(), plan(t, c))
	if err == nil || !strings.Contains(res.Pending()[0].Cause, "kubectl -n kube-system rollout restart daemonset/aws-cloud-controller-manager") ||
		!strings.Contains(res.Pending()[0].Cause, "its ENI may have no IPv6 address") {
		t.Fatalf("Wait: %v %+v", err, res)
	}
}

func TestDiff(t *testing.T) {
	f := newFakeAPI(t, ocpCM("[Global]\n"), mkNode("n1", "10.0.0.1"))
	c := &Converter{Kube: f}
	a, b := plan(t, c), plan(t, c)
	if d := Diff(a, b); d != "" {
		t.Errorf("same plans differ: %s", d)
	}
	f.someoneEdits(t, OpenShiftNamespace, OpenShiftName, func(cm *corev1.ConfigMap) { cm.Data[OpenShiftKey] = "[Global]\nZone=a\n" })
	if d := Diff(a, plan(t, c)); !strings.Contains(d, "cloud config: planned") {
		t.Errorf("diff: %q", d)
	}
}
