package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// OperatorNetworksGVR is the network operator's own config
// (operator.openshift.io networks/cluster), where OVN-Kubernetes' internal
// subnets can be overridden.
var OperatorNetworksGVR = schema.GroupVersionResource{Group: "operator.openshift.io", Version: "v1", Resource: "networks"}

// NetworkConfigName is the one Network config object of an OpenShift cluster.
const NetworkConfigName = "cluster"

// NetworkResource names the object in messages and the journal.
const NetworkResource = "networks.config.openshift.io/cluster"

// NetworkConfig is what this package reads of networks.config.openshift.io/cluster.
type NetworkConfig struct {
	NetworkType          string                `json:"networkType"`
	SpecClusterNetwork   []ClusterNetworkEntry `json:"specClusterNetwork"`
	SpecServiceNetwork   []string              `json:"specServiceNetwork"`
	StatusClusterNetwork []ClusterNetworkEntry `json:"statusClusterNetwork"`
	StatusServiceNetwork []string              `json:"statusServiceNetwork"`
	ResourceVersion      string                `json:"-"`
	// raw keeps the lists exactly as stored, for the patch's test operations.
	rawClusterNetwork []any
	rawServiceNetwork []any
}

// ReadNetworkConfig GETs networks.config.openshift.io/cluster.
func ReadNetworkConfig(ctx context.Context, dc dynamic.Interface) (*NetworkConfig, error) {
	obj, err := dc.Resource(platform.NetworksGVR).Get(ctx, NetworkConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return NetworkConfigFrom(obj), nil
}

// NetworkConfigFrom reads the fields this package needs from the object.
func NetworkConfigFrom(obj *unstructured.Unstructured) *NetworkConfig {
	nc := &NetworkConfig{ResourceVersion: obj.GetResourceVersion()}
	nc.NetworkType, _, _ = unstructured.NestedString(obj.Object, "spec", "networkType")
	if nc.NetworkType == "" {
		nc.NetworkType, _, _ = unstructured.NestedString(obj.Object, "status", "networkType")
	}
	nc.rawClusterNetwork, _, _ = unstructured.NestedSlice(obj.Object, "spec", "clusterNetwork")
	nc.rawServiceNetwork, _, _ = unstructured.NestedSlice(obj.Object, "spec", "serviceNetwork")
	nc.SpecClusterNetwork = clusterEntries(nc.rawClusterNetwork)
	nc.SpecServiceNetwork = stringList(nc.rawServiceNetwork)
	st, _, _ := unstructured.NestedSlice(obj.Object, "status", "clusterNetwork")
	nc.StatusClusterNetwork = clusterEntries(st)
	ss, _, _ := unstructured.NestedSlice(obj.Object, "status", "serviceNetwork")
	nc.StatusServiceNetwork = stringList(ss)
	return nc
}

func clusterEntries(list []any) []ClusterNetworkEntry {
	var out []ClusterNetworkEntry
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		c := ClusterNetworkEntry{}
		c.CIDR, _ = m["cidr"].(string)
		switch hp := m["hostPrefix"].(type) {
		case int64:
			c.HostPrefix = hp
		case float64:
			c.HostPrefix = int64(hp)
		}
		out = append(out, c)
	}
	return out
}

func stringList(list []any) []string {
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// CIDRs of the cluster network entries.
func CIDRs(entries []ClusterNetworkEntry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.CIDR)
	}
	return out
}

// HasFamily reports whether any CIDR is of the family ("IPv4", "IPv6").
func HasFamily(cidrs []string, family string) bool {
	return slices.ContainsFunc(cidrs, func(c string) bool { return Family(c) == family })
}

// SpecDualStack: both spec lists carry IPv6 (requested).
func (nc *NetworkConfig) SpecDualStack() bool {
	return HasFamily(CIDRs(nc.SpecClusterNetwork), "IPv6") && HasFamily(nc.SpecServiceNetwork, "IPv6")
}

// StatusDualStack: both status lists carry IPv6 (applied).
func (nc *NetworkConfig) StatusDualStack() bool {
	return HasFamily(CIDRs(nc.StatusClusterNetwork), "IPv6") && HasFamily(nc.StatusServiceNetwork, "IPv6")
}

// Reserved is the cluster's existing ranges, which the new ones must not overlap.
func (nc *NetworkConfig) Reserved() []Reserved {
	out := ReservedFromCIDRs("existing cluster network", CIDRs(nc.SpecClusterNetwork))
	return append(out, ReservedFromCIDRs("existing service network", nc.SpecServiceNetwork)...)
}

// ReadOVNReserved reads OVN-Kubernetes' internal subnets from the operator
// config; without it (or without permission to read it) the defaults apply.
func ReadOVNReserved(ctx context.Context, dc dynamic.Interface) ([]Reserved, error) {
	obj, err := dc.Resource(OperatorNetworksGVR).Get(ctx, NetworkConfigName, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
			return OVNReserved(nil)
		}
		return nil, err
	}
	return OVNReserved(func(field ...string) string {
		path := append([]string{"spec", "defaultNetwork", "ovnKubernetesConfig"}, field...)
		s, _, _ := unstructured.NestedString(obj.Object, path...)
		return s
	})
}

// PatchOp is one JSON patch (RFC 6902) operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// AddPatch appends the IPv6 entries after the existing ones (IPv4 stays
// first, the primary family never changes). Each add is preceded by a test
// of the whole list as read: if anyone changed it meanwhile, the API server
// rejects the patch instead of the change silently landing on top.
func AddPatch(nc *NetworkConfig, r Request) []PatchOp {
	return []PatchOp{
		{Op: "test", Path: "/spec/clusterNetwork", Value: nonNil(nc.rawClusterNetwork)},
		{Op: "add", Path: "/spec/clusterNetwork/-", Value: r.ClusterEntry()},
		{Op: "test", Path: "/spec/serviceNetwork", Value: nonNil(nc.rawServiceNetwork)},
		{Op: "add", Path: "/spec/serviceNetwork/-", Value: r.ServiceNetwork.String()},
	}
}

func nonNil(list []any) []any {
	if list == nil {
		return []any{}
	}
	return list
}

// Added is what `network` recorded as added, for --revert.
type Added struct {
	ClusterNetwork *ClusterNetworkEntry `json:"clusterNetwork,omitempty"`
	ServiceNetwork string               `json:"serviceNetwork,omitempty"`
}

// RevertPatch removes exactly the recorded entries that are still in spec,
// each guarded by a test that the entry at that index is still the one
// recorded. It returns nil when none of them is there any more.
func RevertPatch(nc *NetworkConfig, a Added) []PatchOp {
	var ops []PatchOp
	if a.ClusterNetwork != nil {
		if i := slices.IndexFunc(nc.SpecClusterNetwork, func(e ClusterNetworkEntry) bool { return e.CIDR == a.ClusterNetwork.CIDR }); i >= 0 {
			p := fmt.Sprintf("/spec/clusterNetwork/%d", i)
			ops = append(ops, PatchOp{Op: "test", Path: p, Value: nc.rawClusterNetwork[i]}, PatchOp{Op: "remove", Path: p})
		}
	}
	if a.ServiceNetwork != "" {
		if i := slices.Index(nc.SpecServiceNetwork, a.ServiceNetwork); i >= 0 {
			p := fmt.Sprintf("/spec/serviceNetwork/%d", i)
			ops = append(ops, PatchOp{Op: "test", Path: p, Value: a.ServiceNetwork}, PatchOp{Op: "remove", Path: p})
		}
	}
	return ops
}

// MarshalPatch encodes the operations as the JSON patch body.
func MarshalPatch(ops []PatchOp) ([]byte, error) { return json.Marshal(ops) }

// IsRejectedPatch reports whether the API server refused to apply a JSON
// patch (422). For a failed test operation kube-apiserver says no more than
// "the server rejected our request due to an error in our request", so
// callers confirm with ChangedSince.
func IsRejectedPatch(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Code == http.StatusUnprocessableEntity
}

// ChangedSince reports whether the lists a patch tested differ between two
// reads of the Network config.
func ChangedSince(before, now *NetworkConfig) bool {
	return !reflect.DeepEqual(before.rawClusterNetwork, now.rawClusterNetwork) ||
		!reflect.DeepEqual(before.rawServiceNetwork, now.rawServiceNetwork)
}

// IsTestFailed reports whether the API server said that a test operation
// failed (some versions name it among the causes).
func IsTestFailed(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	s := status.Status()
	if s.Code != http.StatusUnprocessableEntity {
		return false
	}
	texts := []string{s.Message}
	if s.Details != nil {
		for _, c := range s.Details.Causes {
			texts = append(texts, c.Message)
		}
	}
	for _, t := range texts {
		if strings.Contains(t, "test failed") || strings.Contains(t, "testing value") {
			return true
		}
	}
	return false
}
