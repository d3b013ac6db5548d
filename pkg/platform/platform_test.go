package platform

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func node(providerID string, labels map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Spec: corev1.NodeSpec{ProviderID: providerID}}
}

func openShiftObjects() []runtime.Object {
	infra := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "config.openshift.io/v1", "kind": "Infrastructure",
		"metadata": map[string]any{"name": "cluster"},
		"status": map[string]any{
			"infrastructureName": "demo-x7k2p",
			"platformStatus": map[string]any{
				"type": "AWS",
				"aws": map[string]any{
					"region":           "eu-west-1",
					"ipFamily":         "IPv4",
					"serviceEndpoints": []any{map[string]any{"name": "ec2", "url": "https://127.0.0.1:4566"}},
				},
			},
		},
	}}
	cv := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion",
		"metadata": map[string]any{"name": "version"},
		"status": map[string]any{
			"desired": map[string]any{"version": "4.17.0"},
			"history": []any{
				map[string]any{"state": "Partial", "version": "4.17.0"},
				map[string]any{"state": "Completed", "version": "4.16.9"},
			},
		},
	}}
	return []runtime.Object{infra, cv}
}

func TestDetect(t *testing.T) {
	kubeadmCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"}}
	for _, tc := range []struct {
		name       string
		gitVersion string
		nodes      []corev1.Node
		kube       []runtime.Object
		dyn        []runtime.Object
		want       Info
	}{
		{
			name: "openshift on aws", gitVersion: "v1.29.5", dyn: openShiftObjects(),
			nodes: []corev1.Node{node("aws:///eu-west-1a/i-0123456789abcdef0", nil)},
			want: Info{Kind: OpenShift, OpenShiftVersion: "4.16.9", InfrastructurePlatform: "AWS", Cloud: "aws",
				AWSRegion: "eu-west-1", InfraID: "demo-x7k2p", AWSIPFamily: "IPv4"},
		},
		{
			name: "kind", gitVersion: "v1.33.1", kube: []runtime.Object{kubeadmCM},
			nodes: []corev1.Node{node("kind://docker/kind/kind-control-plane", nil)},
			want:  Info{Kind: KindKind},
		},
		{
			name: "kubeadm on ec2", gitVersion: "v1.31.0", kube: []runtime.Object{kubeadmCM},
			nodes: []corev1.Node{node("aws:///us-west-2b/i-0aaaaaaaaaaaaaaaa", nil)},
			want:  Info{Kind: Kubeadm, Cloud: "aws", AWSRegion: "us-west-2"},
		},
		{
			name: "eks", gitVersion: "v1.30.4-eks-a737599",
			nodes: []corev1.Node{node("aws:///us-east-2c/i-0bbbbbbbbbbbbbbbb", map[string]string{"eks.amazonaws.com/nodegroup": "ng"})},
			want:  Info{Kind: EKS, Cloud: "aws", AWSRegion: "us-east-2"},
		},
		{
			name: "other", gitVersion: "v1.22.3",
			nodes: []corev1.Node{node("", nil)},
			want:  Info{Kind: Other},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc := fake.NewClientset(tc.kube...)
			kc.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: tc.gitVersion}
			dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
				InfrastructuresGVR: "InfrastructureList", ClusterVersionsGVR: "ClusterVersionList",
			}, tc.dyn...)
			got, err := Detect(context.Background(), kc, dc, tc.nodes)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.KubernetesVersion = tc.gitVersion
			if got.Kind != tc.want.Kind || got.OpenShiftVersion != tc.want.OpenShiftVersion ||
				got.InfrastructurePlatform != tc.want.InfrastructurePlatform || got.Cloud != tc.want.Cloud ||
				got.AWSRegion != tc.want.AWSRegion || got.InfraID != tc.want.InfraID ||
				got.AWSIPFamily != tc.want.AWSIPFamily || got.KubernetesVersion != tc.want.KubernetesVersion {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if len(got.Evidence) == 0 && tc.want.Kind != Other {
				t.Fatal("detection must say how it knew")
			}
		})
	}
}

func TestRegionOfZone(t *testing.T) {
	for zone, want := range map[string]string{
		"us-east-1a": "us-east-1", "us-west-2-lax-1a": "us-west-2", "us-gov-west-1b": "us-gov-west-1",
		"ap-southeast-2c": "ap-southeast-2", "": "", "nonsense": "",
	} {
		if got := RegionOfZone(zone); got != want {
			t.Errorf("RegionOfZone(%q) = %q, want %q", zone, got, want)
		}
	}
}

func TestParseAWSProviderID(t *testing.T) {
	zone, id, ok := ParseAWSProviderID("aws:///us-east-1a/i-0123456789abcdef0")
	if !ok || zone != "us-east-1a" || id != "i-0123456789abcdef0" {
		t.Fatalf("got %q %q %v", zone, id, ok)
	}
	if _, _, ok := ParseAWSProviderID("kind://docker/kind/n"); ok {
		t.Fatal("kind providerID parsed as AWS")
	}
}
