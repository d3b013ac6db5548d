package harness

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"gopkg.in/gcfg.v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// Where OpenShift keeps the cloud provider's config, and the CCM's copy of
// it (see pkg/nodes/doc.go for the sources).
const (
	CloudConfigNamespace     = "openshift-config"
	CloudConfigName          = "cloud-provider-config"
	CloudConfigKey           = "config"
	CCMNamespace             = "openshift-cloud-controller-manager"
	CCMConfigMap             = "cloud-conf"
	CCMConfigKey             = "cloud.conf"
	InstallerIPv4CloudConfig = "[Global]\n" // what the installer writes for an IPv4 AWS install
)

// CloudNodeController plays the parts of OpenShift on AWS that give a Node
// its addresses, and only what they do with the state the tool leaves:
//
//   - the cluster-config-operator and the cloud-controller-manager
//     operator's config sync copy openshift-config/cloud-provider-config
//     [config] to openshift-cloud-controller-manager/cloud-conf [cloud.conf];
//   - the operator rolls the aws-cloud-controller-manager when that copy
//     changes, and the CCM reads it once, at start, with gopkg.in/gcfg.v1
//     as cloud-provider-aws does (a config it cannot read stops it: the
//     nodes keep the addresses they had);
//   - its cloud node controller sets each Node's InternalIPs to the
//     addresses of the families NodeIPFamilies lists, in that order (ipv4
//     when none): the node's IPv4 address, and the first IPv6 address of
//     the instance's primary ENI, when it has one. Nothing else.
//
// Caveat: OpenShift 4.10, the sandbox's default version, ran the in-tree
// cloud provider, not the external CCM; the sandbox models the external
// CCM of 4.14 and later, where the nodes phase's change is what counts.
//
// It polls moto (which has no watch) and the ConfigMap every 200ms.
type CloudNodeController struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	loaded   *string  // the config text the CCM runs with (nil: none yet)
	families []string // its NodeIPFamilies
	restarts int
	readErr  error
}

// StartCloudNodeController runs the controller for world's instances. The
// nodes' IPv4 InternalIPs are those they have now.
func StartCloudNodeController(kc kubernetes.Interface, cfg aws.Config, world *moto.World) *CloudNodeController {
	ctx, cancel := context.WithCancel(context.Background())
	c := &CloudNodeController{cancel: cancel, done: make(chan struct{}), families: []string{"ipv4"}}
	client := ec2.NewFromConfig(cfg)
	nodeOf := map[string]string{} // instance ID -> node name
	for _, inst := range world.Instances {
		nodeOf[inst.ID] = inst.PrivateDNSName
	}
	ipv4 := map[string][]string{} // node -> its IPv4 InternalIPs, as at start
	go func() {
		defer close(c.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if len(ipv4) == 0 {
				for _, name := range nodeOf {
					if n, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil {
						for _, a := range n.Status.Addresses {
							if ip, err := netip.ParseAddr(a.Address); a.Type == corev1.NodeInternalIP && err == nil && ip.Is4() {
								ipv4[name] = append(ipv4[name], a.Address)
							}
						}
					}
				}
			}
			c.syncConfig(ctx, kc)
			if fam, ok := c.running(); ok {
				syncNodeAddresses(ctx, kc, client, world.VPC.ID, nodeOf, ipv4, fam)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// Stop ends the controller.
func (c *CloudNodeController) Stop() {
	c.cancel()
	<-c.done
}

// Restarts is how many times the CCM restarted for a changed config.
func (c *CloudNodeController) Restarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// Families is the NodeIPFamilies the CCM runs with, and the error that
// stopped it reading its config, if any.
func (c *CloudNodeController) Families() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.families), c.readErr
}

func (c *CloudNodeController) running() ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.families), c.readErr == nil
}

// syncConfig copies the user's config to the CCM's ConfigMap and restarts
// the CCM when the copy changed.
func (c *CloudNodeController) syncConfig(ctx context.Context, kc kubernetes.Interface) {
	src, err := kc.CoreV1().ConfigMaps(CloudConfigNamespace).Get(ctx, CloudConfigName, metav1.GetOptions{})
	text := ""
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return
	default:
		text = src.Data[CloudConfigKey]
	}
	c.mu.Lock()
	same := c.loaded != nil && *c.loaded == text
	c.mu.Unlock()
	if same {
		return
	}
	cms := kc.CoreV1().ConfigMaps(CCMNamespace)
	cur, err := cms.Get(ctx, CCMConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if EnsureNamespace(ctx, kc, CCMNamespace, nil) != nil {
			return
		}
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: CCMNamespace, Name: CCMConfigMap},
			Data: map[string]string{CCMConfigKey: text}}, metav1.CreateOptions{})
	case err == nil && cur.Data[CCMConfigKey] != text:
		cur.Data = map[string]string{CCMConfigKey: text}
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return
	}
	fam, rerr := ReadNodeIPFamilies(text)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded != nil {
		c.restarts++
	}
	c.loaded, c.readErr = &text, rerr
	if rerr == nil {
		c.families = fam
	}
}

// awsCloudConfig is the part of cloud-provider-aws' CloudConfig the
// sandbox reads.
type awsCloudConfig struct {
	Global struct {
		Zone, Region, VPC, SubnetID, RoleARN, KubernetesClusterTag, KubernetesClusterID string
		DisableSecurityGroupIngress, DisableStrictZoneCheck                             bool
		ElbSecurityGroup                                                                string
		NodeIPFamilies                                                                  []string
	}
	ServiceOverride map[string]*struct {
		Service, Region, URL, SigningRegion, SigningMethod, SigningName string
	}
}

// ReadNodeIPFamilies reads a cloud config as cloud-provider-aws does
// (gcfg, warnings ignored) and returns its NodeIPFamilies, ["ipv4"] when
// none are given.
func ReadNodeIPFamilies(text string) ([]string, error) {
	var cfg awsCloudConfig
	if err := gcfg.FatalOnly(gcfg.ReadStringInto(&cfg, text)); err != nil {
		return nil, fmt.Errorf("reading the cloud config: %w", err)
	}
	if len(cfg.Global.NodeIPFamilies) == 0 {
		return []string{"ipv4"}, nil
	}
	return cfg.Global.NodeIPFamilies, nil
}

func syncNodeAddresses(ctx context.Context, kc kubernetes.Interface, client *ec2.Client, vpc string, nodeOf map[string]string, ipv4 map[string][]string, families []string) {
	out, err := client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpc}}},
	})
	if err != nil {
		return
	}
	for _, eni := range out.NetworkInterfaces {
		if eni.Attachment == nil || aws.ToInt32(eni.Attachment.DeviceIndex) != 0 {
			continue
		}
		name, ok := nodeOf[aws.ToString(eni.Attachment.InstanceId)]
		if !ok {
			continue
		}
		var internal []string
		for _, f := range families {
			switch f { // exactly, as getInstanceNodeAddress compares them
			case "ipv4":
				internal = append(internal, ipv4[name]...)
			case "ipv6":
				for _, a := range eni.Ipv6Addresses {
					if ip, err := netip.ParseAddr(aws.ToString(a.Ipv6Address)); err == nil {
						internal = append(internal, ip.String())
						break
					}
				}
			}
		}
		node, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		want := nodeAddressesWith(node.Status.Addresses, internal)
		if slices.Equal(want, node.Status.Addresses) {
			continue
		}
		node.Status.Addresses = want
		_, _ = kc.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	}
}

// nodeAddressesWith replaces the InternalIPs with internal, where the
// first one was, keeping the other addresses.
func nodeAddressesWith(addrs []corev1.NodeAddress, internal []string) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	at := -1
	for _, a := range addrs {
		if a.Type == corev1.NodeInternalIP {
			if at < 0 {
				at = len(out)
			}
			continue
		}
		out = append(out, a)
	}
	if at < 0 {
		at = 0
	}
	var in []corev1.NodeAddress
	for _, ip := range internal {
		in = append(in, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return slices.Insert(out, at, in...)
}
