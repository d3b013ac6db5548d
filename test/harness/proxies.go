package harness

import (
	"context"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// GatewayPodSelector selects the ingress gateway's proxy pods.
const GatewayPodSelector = "istio=" + IngressGatewayLabel

// ProxyInjector plays, for the ingress gateway's proxies, what Istio does
// and nothing more: the injector gives a proxy pod, when it is created, the
// mesh config's defaultConfig.proxyMetadata (ISTIO_DUAL_STACK among it), and
// istiod configures IPv6 listeners only when it runs with ISTIO_DUAL_STACK
// itself. So a gateway proxy serves IPv6 only if, when its pod was
// created, istiod had rolled out with the variable and the mesh config had
// it in proxyMetadata; a proxy started before keeps IPv4 only until its pod
// is re-created. The injector notes each gateway pod when it first sees it
// (it polls every 50ms, far less than any pod's start).
type ProxyInjector struct {
	kc     kubernetes.Interface
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	dual map[types.UID]bool
}

// StartProxyInjector follows the gateway pods of istio-system.
func StartProxyInjector(kc kubernetes.Interface) *ProxyInjector {
	ctx, cancel := context.WithCancel(context.Background())
	p := &ProxyInjector{kc: kc, cancel: cancel, done: make(chan struct{}), dual: map[types.UID]bool{}}
	go func() {
		defer close(p.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			p.pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends it.
func (p *ProxyInjector) Stop() {
	p.cancel()
	<-p.done
}

func (p *ProxyInjector) pass(ctx context.Context) {
	pods, err := p.kc.CoreV1().Pods(IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: GatewayPodSelector})
	if err != nil {
		return
	}
	var fresh []types.UID
	p.mu.Lock()
	for _, pod := range pods.Items {
		if _, seen := p.dual[pod.UID]; !seen {
			fresh = append(fresh, pod.UID)
		}
	}
	p.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	dual := IstioDualStackNow(ctx, p.kc)
	p.mu.Lock()
	for _, uid := range fresh {
		p.dual[uid] = dual
	}
	p.mu.Unlock()
}

// IstioDualStackNow says whether istiod runs with ISTIO_DUAL_STACK=true
// (its Deployment has it and has rolled out) and the mesh config gives it
// to the proxies.
func IstioDualStackNow(ctx context.Context, kc kubernetes.Interface) bool {
	deps, err := kc.AppsV1().Deployments(IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil || len(deps.Items) == 0 {
		return false
	}
	d := deps.Items[0]
	if !rolledOut(&d) || !envTrue(d.Spec.Template.Spec.Containers, "ISTIO_DUAL_STACK") {
		return false
	}
	cm, err := kc.CoreV1().ConfigMaps(IstioNamespace).Get(ctx, "istio", metav1.GetOptions{})
	if err != nil {
		return false
	}
	return proxyMetadataDualStack(cm.Data["mesh"])
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want
}

func envTrue(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		for _, e := range c.Env {
			if e.Name == name && strings.EqualFold(e.Value, "true") {
				return true
			}
		}
	}
	return false
}

// proxyMetadataDualStack reads defaultConfig.proxyMetadata.ISTIO_DUAL_STACK
// from a mesh config.
func proxyMetadataDualStack(mesh string) bool {
	var cfg struct {
		DefaultConfig struct {
			ProxyMetadata map[string]string `json:"proxyMetadata"`
		} `json:"defaultConfig"`
	}
	if err := yaml.Unmarshal([]byte(mesh), &cfg); err != nil {
		return false
	}
	return strings.EqualFold(cfg.DefaultConfig.ProxyMetadata["ISTIO_DUAL_STACK"], "true")
}

// ServesIPv6 says whether the gateway serves IPv6: it has Ready proxies,
// and every one of them was created dual-stack (a load balancer spreads
// connections over all of them).
func (p *ProxyInjector) ServesIPv6(ctx context.Context) bool {
	pods, err := p.kc.CoreV1().Pods(IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: GatewayPodSelector})
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := 0
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil || !podIsReady(&pod) {
			continue
		}
		if !p.dual[pod.UID] {
			return false
		}
		ready++
	}
	return ready > 0
}
