// Package platform finds out what kind of cluster the kubeconfig points at
// (OpenShift, kind, kubeadm, EKS, other), where it runs, and the AWS facts the
// cluster itself records (region, infraID, custom service endpoints).
package platform

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Kind of cluster distribution.
type Kind string

const (
	OpenShift Kind = "OpenShift"
	KindKind  Kind = "kind"
	Kubeadm   Kind = "kubeadm"
	EKS       Kind = "EKS"
	Other     Kind = "other"
)

// OpenShift config API resources read here and by later layers.
var (
	InfrastructuresGVR  = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "infrastructures"}
	ClusterVersionsGVR  = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusterversions"}
	NetworksGVR         = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "networks"}
	ClusterOperatorsGVR = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusteroperators"}
	// DNSesGVR is where the installer records the base domain and zones.
	DNSesGVR = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "dnses"}
)

// ServiceEndpoint is a custom AWS endpoint recorded in the Infrastructure.
type ServiceEndpoint struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Info is what is known about the cluster. JSON field names are stable.
type Info struct {
	Kind              Kind   `json:"kind"`
	KubernetesVersion string `json:"kubernetesVersion"`
	OpenShiftVersion  string `json:"openshiftVersion,omitempty"`
	// InfrastructurePlatform is OpenShift's platform type (AWS, BareMetal, None...).
	InfrastructurePlatform string `json:"infrastructurePlatform,omitempty"`
	// Cloud is "aws" when the cluster runs on AWS, as far as can be told.
	Cloud            string            `json:"cloud,omitempty"`
	AWSRegion        string            `json:"awsRegion,omitempty"`
	InfraID          string            `json:"infraID,omitempty"`
	AWSIPFamily      string            `json:"awsIPFamily,omitempty"`
	ServiceEndpoints []ServiceEndpoint `json:"serviceEndpoints,omitempty"`
	// CloudConfig is what the Infrastructure's spec.cloudConfig names: the
	// ConfigMap in openshift-config, and its key, holding the cloud
	// provider's config.
	CloudConfig *CloudConfigRef `json:"cloudConfig,omitempty"`
	// Evidence says how the kind and cloud were recognised.
	Evidence []string `json:"evidence,omitempty"`
}

// EndpointMap is the custom AWS endpoints by service name.
func (i Info) EndpointMap() map[string]string {
	m := make(map[string]string, len(i.ServiceEndpoints))
	for _, e := range i.ServiceEndpoints {
		m[e.Name] = e.URL
	}
	return m
}

// OnAWS reports whether the cluster's nodes run on AWS.
func (i Info) OnAWS() bool { return i.Cloud == "aws" }

// Detect works out the platform from the cluster's own objects. nodes are the
// cluster's nodes, already listed by the caller (they are read once per command).
func Detect(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, nodes []corev1.Node) (Info, error) {
	var info Info
	sv, err := kc.Discovery().ServerVersion()
	if err != nil {
		return info, fmt.Errorf("reading the server version: %w", err)
	}
	info.KubernetesVersion = sv.GitVersion

	infra, err := getOptional(ctx, dc, InfrastructuresGVR, "cluster")
	if err != nil {
		return info, fmt.Errorf("reading infrastructures.config.openshift.io/cluster: %w", err)
	}
	if infra != nil {
		info.Kind = OpenShift
		info.Evidence = append(info.Evidence, "infrastructures.config.openshift.io/cluster exists")
		readInfrastructure(&info, infra)
		cv, err := getOptional(ctx, dc, ClusterVersionsGVR, "version")
		if err != nil {
			return info, fmt.Errorf("reading clusterversions.config.openshift.io/version: %w", err)
		}
		if cv != nil {
			info.OpenShiftVersion = ClusterVersion(cv)
		}
	}

	providerIDs := providerIDPrefixes(nodes)
	if info.Cloud == "" && providerIDs["aws"] {
		info.Cloud = "aws"
		info.Evidence = append(info.Evidence, "node providerIDs are aws:///<zone>/<instance>")
		if info.AWSRegion == "" {
			info.AWSRegion = regionFromNodes(nodes)
		}
	}
	if info.Kind != "" {
		return info, nil
	}
	switch {
	case providerIDs["kind"]:
		info.Kind = KindKind
		info.Evidence = append(info.Evidence, "node providerIDs are kind://")
	case strings.Contains(sv.GitVersion, "-eks-") || anyNodeLabel(nodes, "eks.amazonaws.com/nodegroup", "eks.amazonaws.com/compute-type"):
		info.Kind = EKS
		info.Evidence = append(info.Evidence, "EKS server version or node labels")
	default:
		_, err := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
		switch {
		case err == nil:
			info.Kind = Kubeadm
			info.Evidence = append(info.Evidence, "kube-system/kubeadm-config exists")
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
			info.Kind = Other
		default:
			return info, fmt.Errorf("reading kube-system/kubeadm-config: %w", err)
		}
	}
	return info, nil
}

// getOptional GETs a cluster-scoped object; absent (or its API absent) is nil.
func getOptional(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, name string) (*unstructured.Unstructured, error) {
	obj, err := dc.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// CloudConfigRef is an Infrastructure's spec.cloudConfig.
type CloudConfigRef struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

func readInfrastructure(info *Info, infra *unstructured.Unstructured) {
	info.InfraID, _, _ = unstructured.NestedString(infra.Object, "status", "infrastructureName")
	if name, _, _ := unstructured.NestedString(infra.Object, "spec", "cloudConfig", "name"); name != "" {
		key, _, _ := unstructured.NestedString(infra.Object, "spec", "cloudConfig", "key")
		info.CloudConfig = &CloudConfigRef{Name: name, Key: key}
	}
	info.InfrastructurePlatform, _, _ = unstructured.NestedString(infra.Object, "status", "platformStatus", "type")
	if info.InfrastructurePlatform == "" {
		info.InfrastructurePlatform, _, _ = unstructured.NestedString(infra.Object, "status", "platform")
	}
	if info.InfrastructurePlatform != "AWS" {
		return
	}
	info.Cloud = "aws"
	info.Evidence = append(info.Evidence, "Infrastructure platform is AWS")
	info.AWSRegion, _, _ = unstructured.NestedString(infra.Object, "status", "platformStatus", "aws", "region")
	info.AWSIPFamily, _, _ = unstructured.NestedString(infra.Object, "status", "platformStatus", "aws", "ipFamily")
	eps, _, _ := unstructured.NestedSlice(infra.Object, "status", "platformStatus", "aws", "serviceEndpoints")
	for _, e := range eps {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		url, _ := m["url"].(string)
		if name != "" && url != "" {
			info.ServiceEndpoints = append(info.ServiceEndpoints, ServiceEndpoint{Name: name, URL: url})
		}
	}
}

// ClusterVersion is the version an OpenShift cluster runs: the newest
// completed entry of status.history, else status.desired.version.
func ClusterVersion(cv *unstructured.Unstructured) string {
	history, _, _ := unstructured.NestedSlice(cv.Object, "status", "history")
	for _, h := range history {
		m, ok := h.(map[string]any)
		if ok && m["state"] == "Completed" {
			if v, _ := m["version"].(string); v != "" {
				return v
			}
		}
	}
	v, _, _ := unstructured.NestedString(cv.Object, "status", "desired", "version")
	return v
}

func providerIDPrefixes(nodes []corev1.Node) map[string]bool {
	seen := map[string]bool{}
	for _, n := range nodes {
		if scheme, _, ok := strings.Cut(n.Spec.ProviderID, "://"); ok {
			seen[scheme] = true
		}
	}
	return seen
}

func anyNodeLabel(nodes []corev1.Node, keys ...string) bool {
	for _, n := range nodes {
		for _, k := range keys {
			if _, ok := n.Labels[k]; ok {
				return true
			}
		}
	}
	return false
}

// awsProviderID is aws:///<availability-zone>/<instance-id> (the zone may be empty).
var awsProviderID = regexp.MustCompile(`^aws:///([^/]*)/(i-[0-9a-f]+)$`)

// ParseAWSProviderID splits a node's providerID into zone and instance ID.
func ParseAWSProviderID(id string) (zone, instance string, ok bool) {
	m := awsProviderID.FindStringSubmatch(id)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// zoneRegion matches the region part of an AWS availability or local zone:
// us-east-1a, us-west-2-lax-1a and us-gov-west-1b all start with a region.
var zoneRegion = regexp.MustCompile(`^([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)`)

// RegionOfZone returns the region of an availability zone, or "".
func RegionOfZone(zone string) string {
	m := zoneRegion.FindStringSubmatch(zone)
	if m == nil {
		return ""
	}
	return m[1]
}

func regionFromNodes(nodes []corev1.Node) string {
	for _, n := range nodes {
		if zone, _, ok := ParseAWSProviderID(n.Spec.ProviderID); ok {
			if r := RegionOfZone(zone); r != "" {
				return r
			}
		}
		if r := n.Labels[corev1.LabelTopologyRegion]; r != "" {
			return r
		}
	}
	return ""
}
