// Package workloads re-creates the pods that lack an IPv6 pod IP once the
// cluster network has IPv6: the "workloads" phase, after the network, the
// mesh and the Services, before the gateway.
//
// A pod keeps the addresses it was given when its sandbox was created; the
// cluster network gaining an IPv6 range changes nothing for pods already
// running. Only a new pod gets both families. So every such pod is
// replaced, and replaced the way a careful admin would:
//
//   - Through the Eviction API, never a DELETE nor `kubectl rollout
//     restart` (which patches the pod template and lets the Deployment
//     controller replace pods at its own pace, ignoring
//     PodDisruptionBudgets). An eviction "is like a policy-controlled
//     DELETE": it respects the pod's PodDisruptionBudget and its
//     terminationGracePeriodSeconds (kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/).
//     The apiserver answers (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go,
//     v1.37): 200 when allowed (the pod is deleted, gracefully); 429
//     TooManyRequests, "Cannot evict pod as it would violate the pod's
//     disruption budget.", with a status cause of type DisruptionBudget
//     saying which budget and "needs N healthy pods and has M currently",
//     when the budget's status.disruptionsAllowed is 0 or its status is
//     older than its spec (the client is expected to retry: the budget
//     allows an eviction again once a replacement is healthy); 403
//     Forbidden with a DisruptionBudget cause when disruptionsAllowed is
//     negative or too many evictions are unconfirmed; 500 when more than
//     one budget selects the pod ("the eviction subresource does not
//     support" it). A 429 can also be API Priority and Fairness throttling;
//     both are retried alike. A pod no budget selects is always evicted,
//     and so is a Pending one (canIgnorePDB: a pending pod is not counted
//     healthy by its budget anyway).
//   - With k8s.io/kubectl's drain helpers (pkg/drain, v0.37.2), the code
//     behind `kubectl drain`, rather than a hand-written loop. Their
//     behaviour, read from drain.go, and what this package does about it:
//     Helper.DeleteOrEvictPods asks discovery (CheckEvictionSupport: the
//     "pods/eviction" subresource of v1 with its group/version) and falls
//     back to plain DELETEs, which ignore budgets, when it is not listed:
//     Apply checks for policy/v1 first and refuses to run without it, and
//     the client handed to the helper refuses pod deletes besides. Each pod
//     is evicted in its own goroutine: a 429 is retried after
//     EvictErrorRetryDelay (a plain sleep; kubectl drain uses 5s, as does
//     Converter.RetryDelay by default) until the helper's Timeout (0 would
//     be for ever; here Options.Timeout, 5m by default) passes; a NotFound
//     counts as done; a Forbidden from a terminating namespace is retried;
//     any other error ends that pod's eviction, with the error flattened
//     into text (%v), so the client handed to the helper records each
//     answer with its status, and Apply tells a budget's refusal from a
//     missing RBAC permission (create on pods/eviction) by it. After an
//     accepted eviction the helper polls the pod every second until it is
//     gone or has another UID, then calls OnPodDeletionOrEvictionFinished
//     with a nil error: that is what marks a pod evicted here.
//     GracePeriodSeconds is -1 (the pod's own grace period; 0 would kill at
//     once); Out and ErrOut must be set (the helper wraps them, each in its
//     own lock), and go to Converter.Log with the phase's prefix.
//   - In order: the cluster DNS pods first (openshift-dns/dns-default,
//     kube-system k8s-app=kube-dns), since every other pod resolves its
//     peers through them; then istiod (app=istiod), from which new proxies
//     take their configuration; then the ingress gateways (istio=
//     ingressgateway, app=istio-ingressgateway, or deployed by istiod for a
//     Gateway API Gateway: gateway.istio.io/managed); then the rest,
//     namespace by namespace and by name. DaemonSet pods are evicted too:
//     the DaemonSet re-creates them on their node.
//   - In batches of at most Options.MaxUnavailable pods of one group and
//     namespace. After each batch Apply watches the namespace's pods
//     (pkg/kube.Wait, client-go's UntilWithSync: no polling) until every
//     evicted pod has a replacement Ready with an IPv4 and an IPv6 pod IP:
//     for a StatefulSet's pod the pod of the same name with another UID;
//     for any other controller's (ReplicaSet, DaemonSet, Job...) a pod of
//     the same controller, by UID, that did not exist before the batch's
//     evictions (which needs no clock shared with the apiserver), each
//     replacement counted once. A replacement Ready with IPv4 only stops
//     the run at once: the cluster network does not give new pods IPv6,
//     and evicting more would only churn them.
//   - A pod with no controller is not evicted unless Options.Force, as
//     `kubectl drain` (its reason is drain's: "pass --force to delete it;
//     it will not come back"). Static (mirror) pods, hostNetwork pods,
//     terminating, completed and pending pods without an IP are skipped,
//     each with its reason in the plan.
//
// There is no undo: an evicted pod comes back from its controller, with
// both families, and that is the point. So nothing is journalled. What can
// go wrong is bounded instead: a budget that never allows an eviction ends
// the run, when the time limit passes, with a *BlockedError naming each
// budget (its currentHealthy, desiredHealthy and disruptionsAllowed, read
// then) and the pods not moved; pods already moved are reported moved.
//
// The package is a phase in two steps, like package services: Plan reads
// (namespaces, pods and PodDisruptionBudgets, each list paginated) and
// returns plain data naming every pod it would evict or skip and why, with
// the budgets that select each; Apply evicts exactly that plan's pods,
// reading each again first (one gone, re-created, terminating or given IPv6
// since the plan is "already replaced" and left alone), and returns per pod
// and per namespace what moved and what is left. Diff compares two plans'
// evict lists for the drift check, and Count is status's census of pods
// without IPv6.
package workloads
