package status

import "github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"

// LayerVerdicts sum up a report per layer for the fleet view, as an admin
// reads a cluster: the AWS underlay, the overlay (nodes, ranges, Services,
// pods), the mesh (istiod and its dual-stack mode) and the edge (the ingress
// gateway Services and their load balancers). Each is the worst status of
// its checks; "" when the layer had no check (no AWS underlay on kind).
type LayerVerdicts struct {
	Underlay report.Status `json:"underlay,omitempty"`
	Overlay  report.Status `json:"overlay,omitempty"`
	Mesh     report.Status `json:"mesh,omitempty"`
	Edge     report.Status `json:"edge,omitempty"`
}

// edgeChecks are the mesh layer's checks of the ingress gateway, which the
// fleet view shows as a layer of their own (the gateway command's).
var edgeChecks = map[string]bool{"ingress-gateway": true, "ingress-load-balancer": true, "openshift-router": true}

// Verdicts sums r up per layer. The cluster layer's checks (version,
// platform) are not a layer of the conversion and are left out.
func Verdicts(r report.Report) LayerVerdicts {
	var v LayerVerdicts
	for _, c := range r.Checks {
		var slot *report.Status
		switch {
		case c.Layer == report.LayerMesh && edgeChecks[c.Name]:
			slot = &v.Edge
		case c.Layer == report.LayerMesh:
			slot = &v.Mesh
		case c.Layer == report.LayerUnderlay:
			slot = &v.Underlay
		case c.Layer == report.LayerOverlay:
			slot = &v.Overlay
		default:
			continue
		}
		if severity(c.Status) > severity(*slot) {
			*slot = c.Status
		}
	}
	return v
}

// severity orders statuses for "the worst of": a failure outranks a lost
// result, which outranks a warning; anything that ran outranks nothing.
func severity(s report.Status) int {
	switch s {
	case report.Fail:
		return 5
	case report.Inconclusive:
		return 4
	case report.Warn:
		return 3
	case report.Pass:
		return 2
	case report.Skip:
		return 1
	default:
		return 0
	}
}
