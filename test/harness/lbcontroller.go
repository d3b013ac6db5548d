package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// LBController simulates the service controller of the in-tree AWS cloud
// provider (cloud-provider-aws) against moto: a LoadBalancer Service gets a
// Classic ELB, or an NLB when annotated
// service.beta.kubernetes.io/aws-load-balancer-type: nlb, tagged with the
// cluster tag and kubernetes.io/service-name, in the cluster's public
// subnets (one per zone), and its DNS name is written to the Service's
// status. Like the real one it ignores the ip-address-type annotation (the
// NLB stays ipv4 until someone calls SetIpAddressType), refuses to change
// the type of an existing load balancer (event SyncLoadBalancerFailed), and
// deletes the load balancer with the Service. Like the real service
// controller it puts the finalizer service.kubernetes.io/load-balancer-cleanup
// on a Service before creating its load balancer and removes it only after
// deleting it, so a deleted Service stays (Terminating) until then; Hold
// models a controller that is down or slow to get there.
//
// Like AWS, a new load balancer is not usable at once: CreateLoadBalancer
// returns its DNS name (which goes into the Service's status), but the
// name answers only once the load balancer is provisioned (minutes on AWS;
// LBControllerOptions.ProvisionDelay here, from the first create call).
// Active tells the load balancers' DNS (LBDNS.SetActive) which load
// balancers answer. Load balancers the
// controller did not create (the installer's) are active.
type LBController struct {
	kube       kubernetes.Interface
	ec2        *ec2.Client
	elb        *elb.Client
	elbv2      *elbv2.Client
	clusterTag string
	subnets    []string

	mu   sync.Mutex
	stop chan struct{}

	held    bool // deletions wait: the controller is not acting on them
	pending []*corev1.Service

	provisionDelay time.Duration
	pmu            sync.Mutex
	provisioning   map[string]Provisioning // by load balancer name
}

// LBControllerOptions shape the simulated controller.
type LBControllerOptions struct {
	// ProvisionDelay is how long a new load balancer takes until its name
	// answers (default 0: at once, as most tests need).
	ProvisionDelay time.Duration
}

// Provisioning is when the controller created a load balancer and when it
// became active (its name answers).
type Provisioning struct {
	Created, Active time.Time
}

// Active reports whether the load balancer named lbName (its
// LoadBalancerName) answers yet.
func (c *LBController) Active(lbName string) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	p, ok := c.provisioning[lbName]
	return !ok || !time.Now().Before(p.Active)
}

// ProvisioningOf says when the controller created the load balancer with
// this DNS name (which starts with its name and a dash) and when it became
// (or becomes) active.
func (c *LBController) ProvisioningOf(dnsName string) (Provisioning, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for name, p := range c.provisioning {
		if strings.HasPrefix(strings.ToLower(dnsName), strings.ToLower(name)+"-") {
			return p, true
		}
	}
	return Provisioning{}, false
}

// creating notes, before the first create call (the name is in moto, and
// so in the DNS's view, from that call on), that the load balancer named
// name is provisioning from now.
func (c *LBController) creating(name string) {
	now := time.Now()
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if _, ok := c.provisioning[name]; !ok { // a retry keeps the first start
		c.provisioning[name] = Provisioning{Created: now, Active: now.Add(c.provisionDelay)}
	}
}

// finalizerLBCleanup is the service controller's finalizer
// (k8s.io/cloud-provider/controllers/service: servicehelper.LoadBalancerCleanupFinalizer).
const finalizerLBCleanup = "service.kubernetes.io/load-balancer-cleanup"

// Hold stops the controller from acting on deleted Services (their load
// balancer stays and so does their finalizer) until Resume.
func (c *LBController) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = true
}

// Resume acts on the deletions held since Hold.
func (c *LBController) Resume() {
	c.mu.Lock()
	c.held = false
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, svc := range pending {
		c.cleanup(svc)
	}
}

// Annotation and tag names of the AWS cloud provider.
const (
	annotationLBType = "service.beta.kubernetes.io/aws-load-balancer-type"
	tagServiceName   = "kubernetes.io/service-name"
)

// StartLBController runs the controller until Stop. subnets are the public
// subnets (one per zone) the load balancers go in.
func StartLBController(kc kubernetes.Interface, cfg aws.Config, clusterTag string, subnets []string) *LBController {
	return StartLBControllerWith(kc, cfg, clusterTag, subnets, LBControllerOptions{})
}

// StartLBControllerWith is StartLBController with options.
func StartLBControllerWith(kc kubernetes.Interface, cfg aws.Config, clusterTag string, subnets []string, o LBControllerOptions) *LBController {
	c := &LBController{
		kube: kc, ec2: ec2.NewFromConfig(cfg), elb: elb.NewFromConfig(cfg), elbv2: elbv2.NewFromConfig(cfg),
		clusterTag: clusterTag, subnets: subnets, stop: make(chan struct{}),
		provisionDelay: o.ProvisionDelay, provisioning: map[string]Provisioning{},
	}
	factory := informers.NewSharedInformerFactory(kc, 30*time.Second)
	inf := factory.Core().V1().Services().Informer()
	onChange := func(obj any) {
		if svc, ok := obj.(*corev1.Service); ok {
			c.sync(svc)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onChange,
		UpdateFunc: func(_, obj any) { onChange(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if svc, ok := obj.(*corev1.Service); ok && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
				c.delete(svc)
			}
		},
	})
	factory.Start(c.stop)
	return c
}

// Stop ends the controller.
func (c *LBController) Stop() { close(c.stop) }

// lbName is the cloud provider's default name: "a" + the Service UID
// without dashes, cut to 32 characters.
func lbName(svc *corev1.Service) string {
	name := "a" + strings.ReplaceAll(string(svc.UID), "-", "")
	if len(name) > 32 {
		name = name[:32]
	}
	return name
}

type existingLB struct {
	nlb     bool
	name    string
	arn     string
	dnsName string
}

func (c *LBController) sync(svc *corev1.Service) {
	if svc.DeletionTimestamp != nil {
		if slices.Contains(svc.Finalizers, finalizerLBCleanup) {
			c.mu.Lock()
			held := c.held
			if held {
				c.pending = append(c.pending, svc)
			}
			c.mu.Unlock()
			if !held {
				c.cleanup(svc)
			}
		}
		return
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref := svc.Namespace + "/" + svc.Name
	if !slices.Contains(svc.Finalizers, finalizerLBCleanup) {
		upd := svc.DeepCopy()
		upd.Finalizers = append(upd.Finalizers, finalizerLBCleanup)
		got, err := c.kube.CoreV1().Services(svc.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return // a newer version of the Service comes with its own event
		}
		svc = got
	}
	wantNLB := strings.EqualFold(svc.Annotations[annotationLBType], "nlb")
	have, err := c.find(ctx, ref)
	if err != nil {
		c.fail(ctx, svc, err)
		return
	}
	if have != nil && have.nlb != wantNLB {
		c.fail(ctx, svc, fmt.Errorf("changing the load balancer type of %s is not supported (it has a %s); delete and re-create the Service",
			ref, map[bool]string{true: "Network Load Balancer", false: "Classic Load Balancer"}[have.nlb]))
		return
	}
	if have == nil {
		c.creating(lbName(svc))
		if have, err = c.create(ctx, svc, ref, wantNLB); err != nil {
			c.fail(ctx, svc, err)
			return
		}
	}
	ing := svc.Status.LoadBalancer.Ingress
	if len(ing) == 1 && ing[0].Hostname == have.dnsName {
		return
	}
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: have.dnsName}}
	if _, err := c.kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		c.fail(ctx, svc, err)
	}
}

// find looks for the load balancer tagged for the Service, of either kind.
func (c *LBController) find(ctx context.Context, ref string) (*existingLB, error) {
	classic, err := c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		return nil, err
	}
	for _, lb := range classic.LoadBalancerDescriptions {
		tags, err := c.elb.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{aws.ToString(lb.LoadBalancerName)}})
		if err != nil {
			return nil, err
		}
		for _, td := range tags.TagDescriptions {
			for _, t := range td.Tags {
				if aws.ToString(t.Key) == tagServiceName && aws.ToString(t.Value) == ref {
					return &existingLB{name: aws.ToString(lb.LoadBalancerName), dnsName: aws.ToString(lb.DNSName)}, nil
				}
			}
		}
	}
	v2, err := c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if err != nil {
		return nil, err
	}
	for _, lb := range v2.LoadBalancers {
		if lb.Type != elbv2types.LoadBalancerTypeEnumNetwork {
			continue
		}
		tags, err := c.elbv2.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: []string{aws.ToString(lb.LoadBalancerArn)}})
		if err != nil {
			return nil, err
		}
		for _, td := range tags.TagDescriptions {
			for _, t := range td.Tags {
				if aws.ToString(t.Key) == tagServiceName && aws.ToString(t.Value) == ref {
					return &existingLB{nlb: true, name: aws.ToString(lb.LoadBalancerName), arn: aws.ToString(lb.LoadBalancerArn), dnsName: aws.ToString(lb.DNSName)}, nil
				}
			}
		}
	}
	return nil, nil
}

func (c *LBController) create(ctx context.Context, svc *corev1.Service, ref string, nlb bool) (*existingLB, error) {
	name := lbName(svc)
	if !nlb {
		var listeners []elbtypes.Listener
		for _, p := range svc.Spec.Ports {
			listeners = append(listeners, elbtypes.Listener{Protocol: aws.String("TCP"), LoadBalancerPort: p.Port,
				InstanceProtocol: aws.String("TCP"), InstancePort: aws.Int32(p.NodePort)})
		}
		out, err := c.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
			LoadBalancerName: aws.String(name), Subnets: c.subnets, Listeners: listeners,
			Tags: []elbtypes.Tag{{Key: aws.String(c.clusterTag), Value: aws.String("owned")}, {Key: aws.String(tagServiceName), Value: aws.String(ref)}},
		})
		if err != nil {
			return nil, fmt.Errorf("creating Classic ELB %s: %w", name, err)
		}
		return &existingLB{name: name, dnsName: aws.ToString(out.DNSName)}, nil
	}
	out, err := c.elbv2.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{
		Name: aws.String(name), Type: elbv2types.LoadBalancerTypeEnumNetwork, Scheme: elbv2types.LoadBalancerSchemeEnumInternetFacing,
		Subnets: c.subnets, IpAddressType: elbv2types.IpAddressTypeIpv4,
		Tags: []elbv2types.Tag{{Key: aws.String(c.clusterTag), Value: aws.String("owned")}, {Key: aws.String(tagServiceName), Value: aws.String(ref)}},
	})
	if err != nil || len(out.LoadBalancers) != 1 {
		return nil, fmt.Errorf("creating NLB %s: %v", name, err)
	}
	lb := out.LoadBalancers[0]
	for _, p := range svc.Spec.Ports {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", ref, p.Port)))
		tg, err := c.elbv2.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{
			Name: aws.String("k8s-" + hex.EncodeToString(sum[:])[:20]), Protocol: elbv2types.ProtocolEnumTcp,
			Port: aws.Int32(p.NodePort), VpcId: lb.VpcId, TargetType: elbv2types.TargetTypeEnumInstance,
		})
		if err != nil {
			return nil, fmt.Errorf("creating target group for port %d: %w", p.Port, err)
		}
		if _, err := c.elbv2.CreateListener(ctx, &elbv2.CreateListenerInput{
			LoadBalancerArn: lb.LoadBalancerArn, Port: aws.Int32(p.Port), Protocol: elbv2types.ProtocolEnumTcp,
			DefaultActions: []elbv2types.Action{{Type: elbv2types.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroups[0].TargetGroupArn}},
		}); err != nil {
			return nil, fmt.Errorf("creating listener for port %d: %w", p.Port, err)
		}
	}
	return &existingLB{nlb: true, name: name, arn: aws.ToString(lb.LoadBalancerArn), dnsName: aws.ToString(lb.DNSName)}, nil
}

// cleanup deletes a deleted Service's load balancer, then its finalizer.
func (c *LBController) cleanup(svc *corev1.Service) {
	c.delete(svc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := c.kube.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if err != nil || cur.UID != svc.UID {
		return
	}
	cur.Finalizers = slices.DeleteFunc(cur.Finalizers, func(f string) bool { return f == finalizerLBCleanup })
	_, _ = c.kube.CoreV1().Services(svc.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
}

func (c *LBController) delete(svc *corev1.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	have, err := c.find(ctx, svc.Namespace+"/"+svc.Name)
	if err != nil || have == nil {
		return
	}
	if have.nlb {
		_, _ = c.elbv2.DeleteLoadBalancer(ctx, &elbv2.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(have.arn)})
		return
	}
	// The provider deletes the security group it made for a Classic ELB
	// with it; moto makes one for an ELB created without one, and keeps it.
	var groups []string
	if d, err := c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{have.name}}); err == nil {
		for _, lb := range d.LoadBalancerDescriptions {
			groups = append(groups, lb.SecurityGroups...)
		}
	}
	if _, err := c.elb.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerName: aws.String(have.name)}); err != nil {
		return
	}
	if len(groups) == 0 {
		return
	}
	sgs, err := c.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: groups})
	if err != nil {
		return
	}
	for _, g := range sgs.SecurityGroups {
		if n := aws.ToString(g.GroupName); strings.HasPrefix(n, "default_elb_") || strings.HasPrefix(n, "k8s-elb-") {
			_, _ = c.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: g.GroupId})
		}
	}
}

// fail records the error as the cloud provider does: an event on the Service.
func (c *LBController) fail(ctx context.Context, svc *corev1.Service, err error) {
	msg := "Error syncing load balancer: failed to ensure load balancer: " + err.Error()
	_, _ = c.kube.CoreV1().Events(svc.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: svc.Name + "-", Namespace: svc.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, APIVersion: "v1"},
		Reason:         "SyncLoadBalancerFailed", Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "service-controller"},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}, metav1.CreateOptions{})
}
