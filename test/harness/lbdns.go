package harness

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/miekg/dns"
)

// LBDNS keeps a DNSServer's records in step with the load balancers in
// moto, as AWS's DNS does for ELB names: an A record for every load
// balancer, an AAAA record only for those whose IpAddressType is dualstack.
// The addresses are loopback (127.0.0.1, ::1), so a test can listen there.
// A load balancer that is gone has no records from the next refresh on
// (100ms); one still provisioning (SetActive) has none yet.
type LBDNS struct {
	*DNSServer
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	active func(lbName string) bool
}

// SetActive makes a load balancer's name answer only once active (given
// its LoadBalancerName) says it is provisioned (LBController.Active).
func (d *LBDNS) SetActive(active func(lbName string) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = active
}

func (d *LBDNS) isActive(lbName string) bool {
	d.mu.Lock()
	active := d.active
	d.mu.Unlock()
	return active == nil || active(lbName)
}

// StartLBDNS serves on 127.0.0.1 and refreshes from moto every 100ms.
func StartLBDNS(cfg aws.Config) (*LBDNS, error) {
	srv, err := StartDNSServer(nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &LBDNS{DNSServer: srv, cancel: cancel, done: make(chan struct{})}
	classic, v2 := elb.NewFromConfig(cfg), elbv2.NewFromConfig(cfg)
	refresh := func() {
		records := map[string][]net.IP{}
		v4, v6 := net.ParseIP("127.0.0.1"), net.ParseIP("::1")
		if out, err := classic.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{}); err == nil {
			for _, lb := range out.LoadBalancerDescriptions {
				if d.isActive(aws.ToString(lb.LoadBalancerName)) {
					records[dns.Fqdn(strings.ToLower(aws.ToString(lb.DNSName)))] = []net.IP{v4}
				}
			}
		}
		if out, err := v2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{}); err == nil {
			for _, lb := range out.LoadBalancers {
				if !d.isActive(aws.ToString(lb.LoadBalancerName)) {
					continue
				}
				ips := []net.IP{v4}
				if lb.IpAddressType == elbv2types.IpAddressTypeDualstack {
					ips = append(ips, v6)
				}
				records[dns.Fqdn(strings.ToLower(aws.ToString(lb.DNSName)))] = ips
			}
		}
		srv.mu.Lock()
		srv.records = records
		srv.mu.Unlock()
	}
	refresh()
	go func() {
		defer close(d.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				refresh()
			}
		}
	}()
	return d, nil
}

// Close stops refreshing and serving.
func (d *LBDNS) Close() {
	d.cancel()
	<-d.done
	d.DNSServer.Close()
}
