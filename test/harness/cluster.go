package harness

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// NodeSpec describes a Node as a cloud provider and kubelet would register it.
type NodeSpec struct {
	Name        string
	ProviderID  string
	InternalIPs []string
	Hostname    string
	PodCIDRs    []string
	Labels      map[string]string
	Annotations map[string]string
}

// CreateNodes registers nodes with their addresses in status and marks them
// Ready, as a kubelet does.
func CreateNodes(ctx context.Context, kc kubernetes.Interface, nodes []NodeSpec) error {
	for _, n := range nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations},
			Spec:       corev1.NodeSpec{ProviderID: n.ProviderID, PodCIDRs: n.PodCIDRs},
		}
		if len(n.PodCIDRs) > 0 {
			node.Spec.PodCIDR = n.PodCIDRs[0]
		}
		created, err := kc.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
		for _, ip := range n.InternalIPs {
			created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		}
		if n.Hostname != "" {
			created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Hostname})
		}
		now := metav1.Now()
		created.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		ready, err := kc.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("setting node %s status: %w", n.Name, err)
		}
		// The apiserver's NodeTaint admission registered the node with
		// node.kubernetes.io/not-ready:NoSchedule; the node lifecycle
		// controller's NoSchedule pass removes it once the node is Ready.
		// (The DaemonSet controller honours it; the pod simulator does not.)
		kept := slices.DeleteFunc(slices.Clone(ready.Spec.Taints), func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule
		})
		if len(kept) != len(ready.Spec.Taints) {
			ready.Spec.Taints = kept
			if _, err := kc.CoreV1().Nodes().Update(ctx, ready, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("removing node %s's not-ready taint: %w", n.Name, err)
			}
		}
	}
	return nil
}

// ClusterNetworkEntry is one entry of the OpenShift Network's clusterNetwork.
type ClusterNetworkEntry struct {
	CIDR       string
	HostPrefix int64
}

// OpenShiftSpec describes the config.openshift.io objects of a cluster.
type OpenShiftSpec struct {
	InfraID  string
	Version  string // e.g. 4.16.9
	Platform string // AWS, BareMetal, None...
	Region   string
	// IPFamily is platformStatus.aws.ipFamily (IPv4, DualStackIPv4Primary...).
	IPFamily string
	// ServiceEndpoints are custom AWS endpoints by service name (https only).
	ServiceEndpoints map[string]string
	NetworkType      string
	ClusterNetwork   []ClusterNetworkEntry
	ServiceNetwork   []string
}

// CreateOpenShiftConfig creates Infrastructure "cluster", ClusterVersion
// "version", Network "cluster" (spec and status alike) and a healthy network
// ClusterOperator, as an installed cluster has them.
func CreateOpenShiftConfig(ctx context.Context, dc dynamic.Interface, s OpenShiftSpec) error {
	platformStatus := map[string]any{"type": s.Platform}
	if s.Platform == "AWS" {
		aws := map[string]any{"region": s.Region}
		if s.IPFamily != "" {
			aws["ipFamily"] = s.IPFamily
		}
		var eps []any
		for _, name := range sortedKeys(s.ServiceEndpoints) {
			eps = append(eps, map[string]any{"name": name, "url": s.ServiceEndpoints[name]})
		}
		if len(eps) > 0 {
			aws["serviceEndpoints"] = eps
		}
		platformStatus["aws"] = aws
	}
	infraSpec := map[string]any{"platformSpec": map[string]any{"type": s.Platform}}
	if s.Platform == "AWS" {
		// The installer points the Infrastructure at the cloud config it
		// writes (BuildOpenShiftOnAWS creates it).
		infraSpec["cloudConfig"] = map[string]any{"name": CloudConfigName, "key": CloudConfigKey}
	}
	infra := obj("Infrastructure", "cluster",
		infraSpec,
		map[string]any{
			"infrastructureName":     s.InfraID,
			"platform":               s.Platform,
			"platformStatus":         platformStatus,
			"apiServerURL":           "https://api." + s.InfraID + ".example.com:6443",
			"apiServerInternalURI":   "https://api-int." + s.InfraID + ".example.com:6443",
			"etcdDiscoveryDomain":    "",
			"controlPlaneTopology":   "HighlyAvailable",
			"infrastructureTopology": "HighlyAvailable",
		})
	now := time.Now().UTC().Format(time.RFC3339)
	image := "quay.io/openshift-release-dev/ocp-release@sha256:" + fmt.Sprintf("%064d", 0)
	cv := obj("ClusterVersion", "version",
		map[string]any{"clusterID": "8f4c1a2e-6b3d-4e5f-9a7b-0c1d2e3f4a5b", "channel": "stable-" + minor(s.Version)},
		map[string]any{
			"availableUpdates":   nil,
			"observedGeneration": int64(1),
			"versionHash":        "x7k2p",
			"desired":            map[string]any{"version": s.Version, "image": image},
			"history": []any{map[string]any{
				"state": "Completed", "version": s.Version, "image": image, "verified": true,
				"startedTime": now, "completionTime": now,
			}},
		})
	var cn []any
	for _, e := range s.ClusterNetwork {
		cn = append(cn, map[string]any{"cidr": e.CIDR, "hostPrefix": e.HostPrefix})
	}
	var sn []any
	for _, c := range s.ServiceNetwork {
		sn = append(sn, c)
	}
	network := obj("Network", "cluster",
		map[string]any{"clusterNetwork": cn, "serviceNetwork": sn, "networkType": s.NetworkType},
		map[string]any{"clusterNetwork": cn, "serviceNetwork": sn, "networkType": s.NetworkType, "clusterNetworkMTU": int64(8901)})
	operator := obj("ClusterOperator", "network", map[string]any{}, map[string]any{
		"conditions": []any{
			condition("Available", "True", now), condition("Progressing", "False", now), condition("Degraded", "False", now),
		},
		"versions": []any{map[string]any{"name": "operator", "version": s.Version}},
	})
	for _, o := range []struct {
		resource string
		obj      *unstructured.Unstructured
	}{{"infrastructures", infra}, {"clusterversions", cv}, {"networks", network}, {"clusteroperators", operator}} {
		if err := createWithStatus(ctx, dc, configGVR(o.resource), o.obj); err != nil {
			return err
		}
	}
	return nil
}

func configGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: resource}
}

func obj(kind, name string, spec, status map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "config.openshift.io/v1", "kind": kind,
		"metadata": map[string]any{"name": name},
		"spec":     spec, "status": status,
	}}
}

func condition(t, status, now string) map[string]any {
	return map[string]any{"type": t, "status": status, "lastTransitionTime": now, "reason": "AsExpected", "message": ""}
}

// createWithStatus creates an object and then writes its status, which a
// create through the main resource ignores when the status subresource is on.
func createWithStatus(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, o *unstructured.Unstructured) error {
	status := o.Object["status"]
	created, err := dc.Resource(gvr).Create(ctx, o, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", gvr.Resource, o.GetName(), err)
	}
	if _, kept := created.Object["status"]; kept {
		return nil // no status subresource (config.openshift.io Network): stored as created
	}
	created.Object["status"] = status
	if _, err := dc.Resource(gvr).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting status of %s/%s: %w", gvr.Resource, o.GetName(), err)
	}
	return nil
}

// LoadBalancerServiceSpec is a LoadBalancer Service as the cloud provider
// leaves it once its load balancer exists.
type LoadBalancerServiceSpec struct {
	Namespace, Name string
	Labels          map[string]string
	Annotations     map[string]string
	Selector        map[string]string
	Ports           []corev1.ServicePort
	Hostname        string // the load balancer's DNS name, in status
}

// CreateLoadBalancerService creates the namespace if needed and the Service,
// then records the load balancer's hostname in status.
func CreateLoadBalancerService(ctx context.Context, kc kubernetes.Interface, s LoadBalancerServiceSpec) (*corev1.Service, error) {
	if err := EnsureNamespace(ctx, kc, s.Namespace, nil); err != nil {
		return nil, err
	}
	svc, err := kc.CoreV1().Services(s.Namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: s.Selector, Ports: s.Ports},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating service %s/%s: %w", s.Namespace, s.Name, err)
	}
	if s.Hostname == "" {
		return svc, nil
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: s.Hostname}}
	return kc.CoreV1().Services(s.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
}

// EnsureNamespace creates a namespace, with its default ServiceAccount (no
// controller-manager runs to add it), unless it exists.
func EnsureNamespace(ctx context.Context, kc kubernetes.Interface, name string, labels map[string]string) error {
	_, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	_, err = kc.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s/default service account: %w", name, err)
	}
	return nil
}
