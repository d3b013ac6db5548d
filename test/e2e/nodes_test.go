package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// nodesJSON mirrors the stable fields of `nodes -o json`.
type nodesJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    *struct {
		Action      string `json:"action"`
		CloudConfig *struct {
			Namespace string   `json:"namespace"`
			Name      string   `json:"name"`
			Key       string   `json:"key"`
			Source    string   `json:"source"`
			Current   []string `json:"current"`
			Target    []string `json:"target"`
			New       string   `json:"new"`
		} `json:"cloudConfig"`
		Nodes []struct {
			Name string `json:"name"`
			Done bool   `json:"done"`
		} `json:"nodes"`
	} `json:"plan"`
	Wait *struct {
		Done  int `json:"done"`
		Total int `json:"total"`
		Nodes []struct {
			Name  string `json:"name"`
			Cause string `json:"cause"`
		} `json:"nodes"`
	} `json:"wait"`
	Revert []struct {
		Resource string `json:"resource"`
		Status   string `json:"status"`
	} `json:"revert"`
}

func parseNodes(t *testing.T, r result) nodesJSON {
	t.Helper()
	var n nodesJSON
	if err := json.Unmarshal([]byte(r.Stdout), &n); err != nil {
		t.Fatalf("nodes -o json is not JSON: %v\n%s", err, r)
	}
	return n
}

// nodesWithIPv6 counts the nodes that report an IPv6 InternalIP.
func nodesWithIPv6(t *testing.T, s *harness.ConversionSandbox) (with, total int) {
	t.Helper()
	nodes, err := s.API.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes.Items {
		if len(ipfamily.NodeInternalIPs(&nodes.Items[i], ipfamily.IPv6)) > 0 {
			with++
		}
	}
	return with, len(nodes.Items)
}

// TestNodesCommand: on the sandbox, the instances without IPv6 make the wait
// fail naming the cause; after aws apply the change makes every node report
// IPv6 through the cloud controller; --revert restores the text byte for
// byte and the controller takes the addresses away again.
func TestNodesCommand(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	ctx := context.Background()
	cms := s.API.Kube.CoreV1().ConfigMaps(harness.CloudConfigNamespace)
	original, err := cms.Get(ctx, harness.CloudConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A config with more in it than the installer's: every other byte stays.
	text := "# written by hand\n[Global]\nZone = us-east-1a\n\n[ServiceOverride \"1\"]\nService = ec2\nRegion = us-east-1\nURL = https://ec2.example\nSigningRegion = us-east-1\n"
	original.Data[harness.CloudConfigKey] = text
	if _, err := cms.Update(ctx, original, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Bad input: one line, exit 2, nothing read.
	for _, args := range [][]string{
		{"nodes", "--cloud-config", "kube-system/cloud-config"},
		{"nodes", "--revert", "--timeout", "1m"},
		{"nodes", "--dry-run=server"},
		{"nodes", "--cloud-config", "kube-system/absent:cloud.conf", "--yes"},
	} {
		if r := plugin(t, kcfg, env, args...); r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%v: want exit 2 and one line:\n%s", args, r)
		}
	}

	// The plan names the ConfigMap, the families and the new text.
	r := plugin(t, kcfg, env, "nodes", "--dry-run=client", "-o", "json")
	p := parseNodes(t, r)
	if r.Code != 0 || p.Outcome != "planned" || p.Plan == nil || p.Plan.CloudConfig == nil {
		t.Fatalf("nodes --dry-run=client:\n%s", r)
	}
	cc := p.Plan.CloudConfig
	if cc.Namespace != harness.CloudConfigNamespace || cc.Name != harness.CloudConfigName || cc.Key != harness.CloudConfigKey || len(cc.Current) != 0 ||
		strings.Join(cc.Target, ",") != "ipv4,ipv6" {
		t.Errorf("plan: %+v", cc)
	}
	if fam, err := harness.ReadNodeIPFamilies(cc.New); err != nil || strings.Join(fam, ",") != "ipv4,ipv6" {
		t.Errorf("the planned text as cloud-provider-aws reads it: %v %v\n%q", fam, err, cc.New)
	}

	// The instances have no IPv6 yet: the cloud controller restarts with the
	// new config, but no node can report an address its ENI lacks.
	r = plugin(t, kcfg, env, "nodes", "--yes", "--timeout", "3s", "-o", "json")
	p = parseNodes(t, r)
	if r.Code != 1 || p.Outcome != "failed" || p.Wait == nil || p.Wait.Done != 0 || p.Wait.Total != len(s.World.AWS.Instances) {
		t.Fatalf("nodes before aws apply: want a failed wait naming every node:\n%s", r)
	}
	for _, n := range p.Wait.Nodes {
		if n.Cause == "" {
			t.Errorf("node %s lags without a cause", n.Name)
		}
	}
	if with, _ := nodesWithIPv6(t, s); with != 0 {
		t.Errorf("%d nodes report IPv6 without an ENI address", with)
	}

	if r := plugin(t, kcfg, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}
	// The config is already changed: the re-run only waits (or, if the
	// cloud controller already synced the nodes, has nothing to do).
	r = plugin(t, kcfg, env, "nodes", "--yes", "--timeout", "60s", "-o", "json")
	p = parseNodes(t, r)
	switch {
	case r.Code != 0:
		t.Fatalf("nodes after aws apply:\n%s", r)
	case p.Outcome == "converted" && (p.Wait == nil || p.Wait.Done != p.Wait.Total):
		t.Fatalf("nodes after aws apply: converted without every node done:\n%s", r)
	case p.Outcome != "converted" && p.Outcome != "nothing-to-do":
		t.Fatalf("nodes after aws apply: outcome %q:\n%s", p.Outcome, r)
	}
	if with, total := nodesWithIPv6(t, s); with != total {
		t.Errorf("%d of %d nodes report IPv6", with, total)
	}
	got, err := cms.Get(ctx, harness.CloudConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Data[harness.CloudConfigKey], "# written by hand\n[Global]\n") || !strings.Contains(got.Data[harness.CloudConfigKey], "[ServiceOverride \"1\"]\nService = ec2\n") {
		t.Errorf("the rest of the config was not kept:\n%s", got.Data[harness.CloudConfigKey])
	}
	if r := plugin(t, kcfg, env, "nodes", "--yes", "-o", "json"); r.Code != 0 || parseNodes(t, r).Outcome != "nothing-to-do" {
		t.Errorf("nodes once done:\n%s", r)
	}

	// --revert: byte for byte, and the controller drops the IPv6 addresses.
	r = plugin(t, kcfg, env, "nodes", "--revert", "--yes", "-o", "json")
	if p = parseNodes(t, r); r.Code != 0 || p.Outcome != "reverted" {
		t.Fatalf("nodes --revert:\n%s", r)
	}
	if got, err = cms.Get(ctx, harness.CloudConfigName, metav1.GetOptions{}); err != nil || got.Data[harness.CloudConfigKey] != text {
		t.Fatalf("after --revert the config is %q, want %q (%v)", got.Data[harness.CloudConfigKey], text, err)
	}
	err = harness.WaitFor(ctx, 10*time.Second, "the nodes to drop IPv6", func(context.Context) (bool, error) {
		with, _ := nodesWithIPv6(t, s)
		return with == 0, nil
	})
	if err != nil {
		t.Error(err)
	}
	if r := plugin(t, kcfg, env, "nodes", "--revert", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Errorf("a second --revert:\n%s", r)
	}
}
