// Package mesh turns on Istio's dual-stack support: the "mesh" phase,
// between the cluster network (which gives the cluster its IPv6 ranges)
// and the Services and workloads phases.
//
// Istio needs ISTIO_DUAL_STACK in two places, and this package sets both,
// plus istiod's own Service:
//
//  1. istiod's environment: ISTIO_DUAL_STACK=true in the "discovery"
//     container of the istiod Deployment (istiod-<rev> for a revision).
//     The istiod chart renders values.pilot.env as that container's env,
//     one `name`/`value` entry per key (github.com/istio/istio
//     manifests/charts/istio-control/istio-discovery/templates/deployment.yaml).
//  2. The proxies' metadata: defaultConfig.proxyMetadata.ISTIO_DUAL_STACK:
//     "true" in the mesh config, which the chart writes as YAML into the
//     ConfigMap istio (istio-<rev>) of istiod's namespace, data key "mesh",
//     the defaults merged with values.meshConfig and written with toYaml
//     (templates/configmap.yaml). proxyMetadata is a map<string,string> in
//     Istio's MeshConfig, so the value is the string "true". The proxies
//     read it when they start: running pods keep the old setting until the
//     workloads phase re-creates them.
//  3. istiod's Service istiod (istiod-<rev>): its policy and families come
//     from values.pilot.ipFamilyPolicy and values.pilot.ipFamilies
//     (templates/service.yaml). A Service keeps the families it was created
//     with; when its policy becomes PreferDualStack or RequireDualStack the
//     apiserver gives it the second family (kubernetes.io docs, "IPv4/IPv6
//     dual-stack", Services: "switching Services between single-stack and
//     dual-stack").
//
// Istio documents the first two for every install method
// (https://istio.io/latest/docs/setup/additional-setup/dual-stack/: an
// IstioOperator with meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK
// "true" and values.pilot.env.ISTIO_DUAL_STACK "true", or
// `istioctl install --set values.pilot.env.ISTIO_DUAL_STACK=true --set
// meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK="true"`), from
// Istio 1.17 on; alpha in 1.24, beta in 1.28.
//
// The change goes through the install method package istio finds, never
// behind its back, because whatever installed istiod re-applies it:
//
//   - The Sail operator (OpenShift Service Mesh 3): the Istio resource
//     (sailoperator.io/v1, cluster-scoped, spec.namespace naming istiod's
//     namespace, "istio-system" by default) holds the Helm values the
//     operator renders the charts with, in spec.values
//     (github.com/istio-ecosystem/sail-operator api/v1/istio_types.go;
//     api/v1/values_types.gen.go: Values.Pilot.Env map[string]string
//     `json:"env"`, Pilot.IpFamilyPolicy `json:"ipFamilyPolicy"`,
//     Pilot.IpFamilies `json:"ipFamilies"`, Values.MeshConfig.DefaultConfig.
//     ProxyMetadata map[string]string `json:"proxyMetadata"`). The plan
//     names each leaf of spec.values it sets, with its original value, and
//     the maps it has to create; Apply sends one JSON merge patch of those
//     leaves, then waits until the operator has rolled istiod out with the
//     env. Rollback restores changed leaves and removes added ones, and the
//     maps it created when nothing else went in.
//   - istioctl, plain manifests, or an install it cannot tell: a strategic
//     merge patch of the discovery container's env (containers and env
//     merge by name, so nothing else in them moves), the mesh config text
//     edited where the variable goes (a line or three added, or the one
//     line changed; the result is checked by parsing, and written back
//     from the parsed settings only when that edit cannot be made, which
//     the plan says), and istiod's Service patched to the policy asked for
//     (PreferDualStack by default) with its primary family first. The next
//     `istioctl install` re-applies istiod and the mesh config, so the plan
//     prints the flags it needs.
//   - Helm: a Helm upgrade of istiod's release through Helm's SDK, as
//     `helm upgrade <release> --reuse-values --set ...` does: the newest
//     revision's own chart (so the Istio version does not move) and values,
//     plus the leaves pilot.env.ISTIO_DUAL_STACK, meshConfig.defaultConfig.
//     proxyMetadata.ISTIO_DUAL_STACK, pilot.ipFamilyPolicy and
//     pilot.ipFamilies (the istiod chart renders them into the three places
//     above). The release is the meta.helm.sh/release-name annotation Helm
//     writes on what it installs (else the chart's `release` label; the
//     chart labels its Deployment with operator.istio.io/component too, so
//     package istio looks at Helm's annotation first), its records are read
//     where helm keeps them (HELM_DRIVER). The plan records the revision;
//     Apply refuses a release that moved since. Rollback is a Helm rollback
//     to the revision before the upgrade (a new revision with its chart and
//     values), only while the newest revision is still the tool's upgrade.
//   - No istiod: nothing to do, with a note; the caller decides whether
//     that blocks.
//
// The package is a phase in three steps, like packages nodes and services:
// Plan reads and returns plain data naming every object and field it would
// change (with resourceVersions and originals); Apply applies exactly that
// plan, journalling each object's original in full (layer "mesh") before
// it writes it, every write carrying a resourceVersion so that a
// concurrent change is refused, never overwritten (for a Deployment and
// the Istio resource, whose status writes move the resourceVersion, a
// changed metadata.generation or a changed value where the plan writes
// counts as a change since the plan); then it waits for istiod's rollout
// (observedGeneration >= generation, every replica updated and available,
// no old one left), with progress on Log. Rollback restores exactly what
// the journal recorded when the object still holds what the tool wrote,
// and leaves it, saying so, when someone changed it since.
package mesh
