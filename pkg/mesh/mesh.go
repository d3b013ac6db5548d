package mesh

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// Layer is the journal layer of this package's changes.
const Layer = "mesh"

// Journal operations, one per kind of object changed.
const (
	OpPatchSailValues  = "patch-istio-values"   // the Sail Istio resource's spec.values
	OpUpdateMeshConfig = "update-mesh-config"   // the istio[-<rev>] ConfigMap's "mesh" key
	OpPatchIstiodEnv   = "patch-istiod-env"     // istiod's discovery container env
	OpPatchService     = "patch-istiod-service" // istiod's own Service
)

// MeshKey is the data key of the mesh config in the istio ConfigMap.
const MeshKey = "mesh"

// DiscoveryContainer is istiod's container in every Istio chart.
const DiscoveryContainer = "discovery"

const defaultTimeout = 10 * time.Minute

// Options shape a run.
type Options struct {
	// Policy is what istiod's Service gets: PreferDualStack (the default)
	// or RequireDualStack.
	Policy corev1.IPFamilyPolicy `json:"policy"`
	// Timeout bounds the wait for istiod's rollout (10m by default).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Validate checks the options on their own (cli.UsageError, exit 2).
func (o *Options) Validate() error {
	if o.Policy == "" {
		o.Policy = corev1.IPFamilyPolicyPreferDualStack
	}
	if o.Policy != corev1.IPFamilyPolicyPreferDualStack && o.Policy != corev1.IPFamilyPolicyRequireDualStack {
		return cli.Usagef("istiod's Service policy must be PreferDualStack or RequireDualStack, got %q", o.Policy)
	}
	if o.Timeout < 0 {
		return cli.Usagef("the istiod rollout timeout must not be negative, got %s", o.Timeout)
	}
	return nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return defaultTimeout
	}
	return o.Timeout
}

// Action is what a plan does.
type Action string

const (
	ActionChange  Action = "change"  // see the plan's parts
	ActionNothing Action = "nothing" // already dual-stack, or no Istio
	ActionBlocked Action = "blocked" // see Blocker; nothing is changed
)

// SailPlan is the Sail operator's Istio resource (cluster-scoped) and the
// leaves of its spec.values Apply sets.
type SailPlan struct {
	Name            string    `json:"name"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	// Generation moves with spec only: the operator's status writes move
	// the resourceVersion, not it.
	Generation int64 `json:"generation"`
	// Changes are the leaves set, each with its original value.
	Changes []ValueChange `json:"changes"`
	// Created are the maps under spec that did not exist and the patch
	// creates (spec.values.pilot.env, ...): rollback removes them again
	// when nothing else was put in them.
	Created [][]string `json:"created,omitempty"`
	// Patch is the JSON merge patch Apply sends (with the resourceVersion
	// added).
	Patch string `json:"patch"`
}

// ValueChange is one leaf of the Istio resource's spec.
type ValueChange struct {
	// Path under spec: ["values", "pilot", "env", "ISTIO_DUAL_STACK"].
	Path []string `json:"path"`
	// Present says the leaf existed; Original is its JSON then.
	Present  bool   `json:"present"`
	Original string `json:"original,omitempty"`
	// Target is the JSON Apply sets.
	Target string `json:"target"`
}

// EnvPlan is istiod's Deployment and the env variable Apply sets.
type EnvPlan struct {
	Namespace       string    `json:"namespace"`
	Deployment      string    `json:"deployment"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	Generation      int64     `json:"generation"`
	Container       string    `json:"container"`
	// Present says the container had ISTIO_DUAL_STACK; OriginalValue and
	// OriginalValueFrom (JSON) are what it held.
	Present           bool   `json:"present"`
	OriginalValue     string `json:"originalValue,omitempty"`
	OriginalValueFrom string `json:"originalValueFrom,omitempty"`
	// Change says the env needs the change (else it is already "true").
	Change bool `json:"change"`
	// Patch is the strategic merge patch Apply sends (with the
	// resourceVersion added).
	Patch string `json:"patch,omitempty"`
}

// MeshConfigPlan is the istio ConfigMap's mesh key and its new text.
type MeshConfigPlan struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	Key             string    `json:"key"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	KeyPresent      bool      `json:"keyPresent"`
	Change          bool      `json:"change"`
	// Original is the text as planned from, in full; New the exact text
	// Apply writes.
	Original string `json:"original"`
	New      string `json:"new"`
	// Edit is how New was made: "textual" (lines added or one changed, the
	// rest byte for byte) or "reformatted" (parsed and written back: same
	// settings, comments and key order lost).
	Edit string `json:"edit,omitempty"`
	// Diff is the lines removed and added.
	Diff []string `json:"diff,omitempty"`
}

// ServicePlan is istiod's own Service and the shape Apply gives it.
type ServicePlan struct {
	Namespace       string                `json:"namespace"`
	Name            string                `json:"name"`
	UID             types.UID             `json:"uid"`
	ResourceVersion string                `json:"resourceVersion"`
	Policy          corev1.IPFamilyPolicy `json:"ipFamilyPolicy"` // "" when stored without one
	Families        []corev1.IPFamily     `json:"ipFamilies"`
	ClusterIPs      []string              `json:"clusterIPs,omitempty"`
	TargetPolicy    corev1.IPFamilyPolicy `json:"targetIPFamilyPolicy"`
	TargetFamilies  []corev1.IPFamily     `json:"targetIPFamilies"`
	Change          bool                  `json:"change"`
}

// Plan is what Apply does: plain data, to show, save and compare.
type Plan struct {
	Options   Options      `json:"options"`
	Action    Action       `json:"action"`
	Summary   string       `json:"summary"`
	Method    istio.Method `json:"method,omitempty"`
	Namespace string       `json:"namespace,omitempty"`
	Istiod    string       `json:"istiod,omitempty"` // the Deployment
	Revision  string       `json:"revision,omitempty"`
	Version   string       `json:"version,omitempty"`
	// Sail is set for the Sail operator; Env, MeshConfig and Service for
	// istioctl, plain manifests and unknown installs.
	Sail       *SailPlan       `json:"sail,omitempty"`
	Env        *EnvPlan        `json:"env,omitempty"`
	MeshConfig *MeshConfigPlan `json:"meshConfig,omitempty"`
	Service    *ServicePlan    `json:"service,omitempty"`
	// IstioctlFlags are what the next `istioctl install` needs so that it
	// keeps the change.
	IstioctlFlags []string `json:"istioctlFlags,omitempty"`
	// Helm is set for a Helm install: the release and the values its
	// upgrade sets.
	Helm *HelmPlan `json:"helm,omitempty"`
	// Gateways are the Gateway API Gateways istiod deploys whose Service is
	// single-stack: each gets a parameters ConfigMap with the Service
	// overlay.
	Gateways []*GatewayPlan `json:"gateways,omitempty"`
	// HelmCommand is the helm command line that makes the same change on
	// a Helm install.
	HelmCommand string   `json:"helmCommand,omitempty"`
	Blocker     string   `json:"blocker,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// ServiceChange is what the plan does to istiod's Service, directly or
// through the Helm chart; nil when it is not changed.
func (p *Plan) ServiceChange() *ServicePlan {
	if p.Helm != nil && p.Helm.Service != nil && len(p.Helm.Changes) > 0 {
		return p.Helm.Service
	}
	if p.Service != nil && p.Service.Change {
		return p.Service
	}
	return nil
}

// Journal is where changes are recorded before they are made.
// *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Converter plans and applies the mesh phase.
type Converter struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface // the Sail Istio resource; nil: Sail is not looked for
	// Helm reads and upgrades Helm releases; nil: a Helm install is
	// blocked with the helm command that makes the change.
	Helm    HelmConfigs
	Journal Journal // not needed to plan
	Options Options
	// Log hears progress (stderr); nil is silent.
	Log io.Writer
}

func (c *Converter) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format, args...)
	}
}
