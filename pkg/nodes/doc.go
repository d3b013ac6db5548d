// Package nodes makes the cluster's Nodes report an IPv6 InternalIP next to
// their IPv4 one: the "nodes" phase, between the AWS underlay (which gives
// every instance's primary ENI an IPv6 address) and the cluster network.
//
// Giving an ENI an IPv6 address is not enough. On AWS a Node's addresses
// come from one of two places, and this package handles both:
//
//  1. The cloud provider. cloud-provider-aws (the aws-cloud-controller-manager,
//     "CCM") reports the addresses of the families listed in NodeIPFamilies,
//     a multi-valued variable of the [Global] section of its INI cloud
//     config, and only those:
//     - github.com/kubernetes/cloud-provider-aws pkg/providers/v1/config/config.go:
//     `NodeIPFamilies []string` in CloudConfig.Global ("determines which IP
//     addresses are added to node objects and their ordering");
//     - pkg/providers/v1/aws.go: readAWSCloudConfig reads the file with
//     gopkg.in/gcfg.v1 (git-config syntax: section and variable names are
//     case-insensitive, a multi-valued variable takes one value per line,
//     `NodeIPFamilies = ipv4` then `NodeIPFamilies = ipv6`; a variable
//     written without "=" empties the list); newAWSCloud2 sets the default
//     `[]string{"ipv4"}` when none is given; getInstanceNodeAddress switches
//     on each value with `case "ipv4"` / `case "ipv6"`, so the values are
//     compared exactly and anything else ("IPv6", "ipv4,ipv6") is silently
//     ignored; extractIPv6NodeAddresses reports the first IPv6 address of
//     each in-use ENI as an InternalIP;
//     - aws_test.go TestReadAWSCloudConfigNodeIPFamilies reads
//     "[global]\nNodeIPFamilies = ipv6\nNodeIPFamilies = ipv4" as
//     [ipv6 ipv4]; the option came with kubernetes/cloud-provider-aws PR #251
//     (2021: "the default configuration is ipv4 only"), and issue #638
//     confirms it is how dual-stack Nodes are had on AWS.
//     The CCM reads the file once, at start; its cloud node controller
//     re-reads each Node's addresses every --node-status-update-frequency
//     (5m by default: k8s.io/cloud-provider config/v1alpha1/defaults.go).
//     So after the change the CCM must restart, then within one period every
//     Node gains its IPv6 InternalIP.
//
//  2. The kubelet's --node-ip. With an external cloud provider the kubelet
//     records the flag in the Node annotation alpha.kubernetes.io/provided-node-ip
//     (k8s.io/cloud-provider api/well_known_annotations.go), and the cloud
//     node controller keeps, of each address type, only the addresses it
//     names (k8s.io/cloud-provider node/helpers/address.go
//     GetNodeAddressesFromNodeIP): a single IPv4 --node-ip hides the IPv6
//     InternalIP whatever NodeIPFamilies says, and an IPv6 --node-ip the CCM
//     does not report fails the node's sync ("failed to get node address
//     from cloud provider that matches ip", cloud-provider-aws issue #638).
//     Such a node needs --node-ip=<IPv4>,<IPv6> (a dual-stack --node-ip with
//     a cloud provider is KEP-3705, CloudDualStackNodeIPs) after the cloud
//     config lists both families. That is a change on the host: the plan
//     names it per node, as data, and the wait names the node until it is
//     done.
//
// Where the cloud config lives:
//
//   - OpenShift: the ConfigMap openshift-config/cloud-provider-config, data
//     key "config" (github.com/openshift/installer
//     pkg/asset/manifests/cloudproviderconfig.go: cloudProviderConfigDataKey
//     = "config"; the name and key are what infrastructures.config.openshift.io
//     cluster spec.cloudConfig points at). For a dual-stack AWS install the
//     installer writes
//     "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n" (IPv4 primary;
//     ipv6 first for DualStackIPv6Primary) and "[Global]\n" for IPv4
//     (pkg/asset/manifests/cloudproviderconfig_test.go,
//     TestGenerateCloudProviderConfig). Older installers wrote no AWS cloud
//     config at all, or one with [ServiceOverride "N"] sections for custom
//     endpoints (pkg/asset/manifests/aws/cloudproviderconfig.go). From there
//     the cluster-config-operator copies it, appending ServiceOverride
//     sections for the Infrastructure's serviceEndpoints, to
//     openshift-config-managed/kube-cloud-config key cloud.conf
//     (github.com/openshift/cluster-config-operator
//     pkg/operator/kube_cloud_config/{controller,aws}.go), and the
//     cluster-cloud-controller-manager-operator's config-sync controller
//     copies that to openshift-cloud-controller-manager/cloud-conf key
//     cloud.conf (pkg/controllers/cloud_config_sync_controller.go), which the
//     aws-cloud-controller-manager Deployment of that namespace mounts; the
//     operator annotates its pod template with a hash of the ConfigMaps it
//     mounts (operator.openshift.io/config-hash,
//     pkg/controllers/resourceapply/config_hash.go), so a changed config
//     rolls the CCM. Only the openshift-config copy is the user's to edit.
//     Caveat: since 4.20 that operator re-writes the AWS config through
//     gopkg.in/ini.v1 (pkg/cloud/aws/aws_config_transformer.go); before
//     commit b8b3cc5a ("CORS-4209: ensure NodeIPFamilies field is kept as-is
//     after transforming", 2025-09, in release-4.22 and later, not in
//     release-4.20/4.21) it flattened the two lines to
//     "NodeIPFamilies=ipv4,ipv6", which the CCM ignores. The wait reads the
//     CCM's copy and says so when that happens.
//   - Elsewhere (kubeadm, kOps-like or hand-made clusters running the CCM
//     from upstream's Helm chart charts/aws-cloud-controller-manager or
//     examples/existing-cluster): upstream ships no cloud config; the CCM
//     gets `--cloud-config=<path>` and a volume the installer of the cluster
//     adds (the chart's extraVolumes/extraVolumeMounts). The conventional
//     shape, used by cluster-api-provider-aws' docs for dual-stack, is a
//     ConfigMap kube-system/cloud-config with a key such as cloud-config.conf
//     mounted with subPath at the --cloud-config path of the
//     aws-cloud-controller-manager DaemonSet. So this package finds the CCM
//     workload (a DaemonSet or Deployment whose container runs with
//     --cloud-provider=aws), follows its --cloud-config to the ConfigMap
//     volume that holds it, and falls back to kube-system/cloud-config; the
//     namespace, name and key can be given instead. A config on a hostPath
//     is on the control-plane hosts: the plan says so and changes nothing.
//     Upstream's CCM does not restart on a config change (a subPath mount is
//     never even updated), so the plan restarts the workload it found, as
//     `kubectl rollout restart` does.
//
// The package is a phase in three steps, like package services: Plan reads
// and returns plain data naming every object it would change (the
// ConfigMap and key, with the exact new text and the lines added; the CCM
// workload it restarts; per node, where its addresses come from and any
// host-side change); Apply applies exactly that plan, journalling the
// original text in full (layer "nodes") before the ConfigMap update, which
// carries the plan's resourceVersion so a concurrent change is refused,
// never overwritten; Wait follows the Nodes until each has an IPv4 and an
// IPv6 InternalIP, naming the likely cause for each one that does not; and
// Rollback restores the original text byte for byte if the ConfigMap still
// holds what the tool wrote, and leaves it, saying so, if not.
package nodes
