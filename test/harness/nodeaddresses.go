package harness

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// NodeAddressSyncer plays the cloud node controller and kubelet of a
// dual-stack node on AWS: once an instance's primary network interface has
// an IPv6 address, its Node reports it as a second InternalIP (the kubelet
// runs with --node-ip=<v4>,<v6>, as the conversion requires). It polls moto,
// which has no watch, every 200ms.
type NodeAddressSyncer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// StartNodeAddressSyncer keeps the nodes of world's instances in step.
func StartNodeAddressSyncer(kc kubernetes.Interface, cfg aws.Config, world *moto.World) *NodeAddressSyncer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &NodeAddressSyncer{cancel: cancel, done: make(chan struct{})}
	client := ec2.NewFromConfig(cfg)
	nodeOf := map[string]string{} // instance ID -> node name
	for _, inst := range world.Instances {
		nodeOf[inst.ID] = inst.PrivateDNSName
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			syncNodeAddresses(ctx, kc, client, world.VPC.ID, nodeOf)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the syncing.
func (s *NodeAddressSyncer) Stop() {
	s.cancel()
	<-s.done
}

func syncNodeAddresses(ctx context.Context, kc kubernetes.Interface, client *ec2.Client, vpc string, nodeOf map[string]string) {
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
		var v6 []string
		for _, a := range eni.Ipv6Addresses {
			if ip, err := netip.ParseAddr(aws.ToString(a.Ipv6Address)); err == nil {
				v6 = append(v6, ip.String())
			}
		}
		node, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		want := nodeAddressesWith(node.Status.Addresses, v6)
		if slices.Equal(want, node.Status.Addresses) {
			continue
		}
		node.Status.Addresses = want
		_, _ = kc.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	}
}

// nodeAddressesWith keeps the IPv4 InternalIPs and other addresses, and sets
// the IPv6 InternalIP to the first of v6 (none when v6 is empty).
func nodeAddressesWith(addrs []corev1.NodeAddress, v6 []string) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	for _, a := range addrs {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is6() {
				continue
			}
		}
		out = append(out, a)
	}
	if len(v6) > 0 {
		// After the IPv4 InternalIP: the primary family stays first.
		for i, a := range out {
			if a.Type == corev1.NodeInternalIP {
				out = slices.Insert(out, i+1, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: v6[0]})
				break
			}
		}
	}
	return out
}
