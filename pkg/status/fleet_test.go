package status

import (
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func TestVerdicts(t *testing.T) {
	check := func(layer, name string, s report.Status) report.Check {
		return report.Check{Layer: layer, Name: name, Status: s}
	}
	for _, tc := range []struct {
		name   string
		checks []report.Check
		want   LayerVerdicts
	}{
		{"nothing", nil, LayerVerdicts{}},
		{"cluster checks are no layer", []report.Check{check(report.LayerCluster, "platform", report.Fail)}, LayerVerdicts{}},
		{"worst wins", []report.Check{
			check(report.LayerOverlay, "pods", report.Pass),
			check(report.LayerOverlay, "services", report.Warn),
			check(report.LayerOverlay, "pod-cidrs", report.Skip),
			check(report.LayerUnderlay, "vpc-ipv6", report.Pass),
			check(report.LayerUnderlay, "ipv6-routes", report.Fail),
			check(report.LayerUnderlay, "subnet-ipv6", report.Pass),
		}, LayerVerdicts{Underlay: report.Fail, Overlay: report.Warn}},
		{"edge apart from the mesh", []report.Check{
			check(report.LayerMesh, "istiod", report.Pass),
			check(report.LayerMesh, "istiod-dual-stack", report.Pass),
			check(report.LayerMesh, "ingress-gateway", report.Fail),
			check(report.LayerMesh, "ingress-load-balancer", report.Pass),
		}, LayerVerdicts{Mesh: report.Pass, Edge: report.Fail}},
		{"a lost result outranks a warning", []report.Check{
			check(report.LayerMesh, "istiod", report.Warn),
			check(report.LayerMesh, "proxy-dual-stack", report.Inconclusive),
		}, LayerVerdicts{Mesh: report.Inconclusive}},
		{"only skipped", []report.Check{check(report.LayerOverlay, "pod-cidrs", report.Skip)}, LayerVerdicts{Overlay: report.Skip}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r report.Report
			for _, c := range tc.checks {
				r.Add(c)
			}
			if got := Verdicts(r); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
