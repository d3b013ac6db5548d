package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	cacheddiscovery "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/kubernetes/pkg/controller/daemon"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/disruption"
	"k8s.io/kubernetes/pkg/controller/replicaset"
	"k8s.io/kubernetes/pkg/controller/statefulset"
)

// Controllers are kube-controller-manager's own workload controllers, run
// in process against the test apiserver from k8s.io/kubernetes'
// pkg/controller, wired as cmd/kube-controller-manager/app wires them (one
// shared informer factory, a client per controller named after it):
//
//   - deployment: a Deployment gets a ReplicaSet per pod template and
//     rolls between them (a restartedAt patch rolls it as in a cluster);
//   - replicaset: a ReplicaSet keeps its replicas, so an evicted pod gets
//     a replacement (a new name, owned by the ReplicaSet);
//   - statefulset: a StatefulSet keeps its ordinals, so an evicted pod
//     comes back with the same name and a new UID, once the old one is gone;
//   - daemonset: a DaemonSet gets a pod per node (pinned with the node
//     affinity the scheduler honours);
//   - disruption: computes each PodDisruptionBudget's status
//     (currentHealthy, desiredHealthy, disruptionsAllowed,
//     observedGeneration), which the apiserver's eviction subresource
//     checks: without it every eviction of a covered pod answers 429.
//
// Not run: the garbage collector (deleting a Deployment leaves its
// ReplicaSets and pods; the sandboxes delete whole namespaces, which the
// NamespaceFinalizer empties), the scheduler and the kubelet (PodSimulator
// plays them), and every other controller.
type Controllers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Worker counts per controller (kube-controller-manager's defaults are 5;
// the test clusters are small).
const controllerWorkers = 3

// StartControllers runs the controllers until Stop (or ctx ends).
func StartControllers(ctx context.Context, cfg *rest.Config) (*Controllers, error) {
	client := func(name string) (kubernetes.Interface, error) {
		return kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), name))
	}
	shared, err := client("shared-informers")
	if err != nil {
		return nil, err
	}
	// As kube-controller-manager: managed fields are trimmed from cached
	// objects; no resync (its minimum resync is 12h).
	factory := informers.NewSharedInformerFactoryWithOptions(shared, 0, informers.WithTransform(func(obj any) (any, error) {
		if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
			a.SetManagedFields(nil)
		}
		return obj, nil
	}))

	ctx, cancel := context.WithCancel(ctx)
	c := &Controllers{cancel: cancel}
	var runs []func()
	fail := func(err error) (*Controllers, error) {
		cancel()
		return nil, err
	}

	dcClient, err := client("deployment-controller")
	if err != nil {
		return fail(err)
	}
	dc, err := deployment.NewDeploymentController(ctx, factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), dcClient)
	if err != nil {
		return fail(fmt.Errorf("deployment controller: %w", err))
	}
	runs = append(runs, func() { dc.Run(ctx, controllerWorkers) })

	rsClient, err := client("replicaset-controller")
	if err != nil {
		return fail(err)
	}
	rsc := replicaset.NewReplicaSetController(ctx, factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), rsClient, replicaset.BurstReplicas)
	runs = append(runs, func() { rsc.Run(ctx, controllerWorkers) })

	ssClient, err := client("statefulset-controller")
	if err != nil {
		return fail(err)
	}
	ssc := statefulset.NewStatefulSetController(ctx, factory.Core().V1().Pods(), factory.Apps().V1().StatefulSets(),
		factory.Core().V1().PersistentVolumeClaims(), factory.Apps().V1().ControllerRevisions(), ssClient)
	runs = append(runs, func() { ssc.Run(ctx, controllerWorkers) })

	dsClient, err := client("daemon-set-controller")
	if err != nil {
		return fail(err)
	}
	dsc, err := daemon.NewDaemonSetsController(ctx, factory.Apps().V1().DaemonSets(), factory.Apps().V1().ControllerRevisions(),
		factory.Core().V1().Pods(), factory.Core().V1().Nodes(), dsClient, flowcontrol.NewBackOff(time.Second, 15*time.Minute))
	if err != nil {
		return fail(fmt.Errorf("daemonset controller: %w", err))
	}
	runs = append(runs, func() { dsc.Run(ctx, controllerWorkers) })

	// The disruption controller finds a PDB's expected pod count through
	// the pods' controllers; for kinds it does not know it asks their scale
	// subresource, found with a discovery-backed RESTMapper (reset every
	// 30s, as kube-controller-manager does, so CRDs added later resolve).
	pdbClient, err := client("disruption-controller")
	if err != nil {
		return fail(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "controller-discovery"))
	if err != nil {
		return fail(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(disc))
	go wait.Until(mapper.Reset, 30*time.Second, ctx.Done())
	scales, err := scale.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "disruption-controller"), mapper,
		dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(pdbClient.Discovery()))
	if err != nil {
		return fail(err)
	}
	pdbc := disruption.NewDisruptionController(ctx, factory.Core().V1().Pods(), factory.Policy().V1().PodDisruptionBudgets(),
		factory.Core().V1().ReplicationControllers(), factory.Apps().V1().ReplicaSets(), factory.Apps().V1().Deployments(),
		factory.Apps().V1().StatefulSets(), pdbClient, mapper, scales, pdbClient.Discovery())
	runs = append(runs, func() { pdbc.Run(ctx, controllerWorkers) })

	// Informers start once every controller has registered its own.
	factory.Start(ctx.Done())
	for _, run := range runs {
		c.wg.Go(run)
	}
	c.wg.Go(func() {
		<-ctx.Done()
		factory.Shutdown()
	})
	return c, nil
}

// Stop ends the controllers and waits for their workers.
func (c *Controllers) Stop() {
	c.cancel()
	c.wg.Wait()
}
