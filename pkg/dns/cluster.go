package dns

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// ClusterZoneOptions are where the cluster's zones are: the flags, then
// OpenShift's dns.config.openshift.io/cluster (spec.baseDomain,
// spec.privateZone {id | tags}, spec.publicZone.id), then the VPC.
func ClusterZoneOptions(ctx context.Context, dc dynamic.Interface, vpcID, region string, zoneIDs []string) (ZoneOptions, error) {
	o := ZoneOptions{VPCID: vpcID, Region: region, ZoneIDs: zoneIDs}
	if dc == nil {
		return o, nil
	}
	u, err := dc.Resource(platform.DNSesGVR).Get(ctx, "cluster", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || apierrors.IsForbidden(err):
		return o, nil // not OpenShift, or not readable: the VPC's zones
	case err != nil:
		return o, fmt.Errorf("reading dns.config.openshift.io/cluster: %w", err)
	}
	o.ClusterDomain, _, _ = unstructured.NestedString(u.Object, "spec", "baseDomain")
	o.PrivateZoneID, _, _ = unstructured.NestedString(u.Object, "spec", "privateZone", "id")
	o.PublicZoneID, _, _ = unstructured.NestedString(u.Object, "spec", "publicZone", "id")
	o.PrivateZoneTags, _, _ = unstructured.NestedStringMap(u.Object, "spec", "privateZone", "tags")
	return o, nil
}
