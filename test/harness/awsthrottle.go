package harness

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// AWS throttles each account's API requests per region with token buckets;
// moto never does. The proxy's throttling model answers as AWS does when a
// bucket is empty, with AWS's documented default sizes and refill rates:
//
// EC2 ("Request throttling for the Amazon EC2 API",
// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
// "each API is evaluated individually": a bucket per action. Non-mutating
// (Describe*, List*, Get*, Search*): 100, refill 20/s. Unfiltered and
// unpaginated non-mutating (DescribeInstances, DescribeInstanceStatus,
// DescribeNetworkInterfaces, DescribeSecurityGroups, DescribeSnapshots,
// DescribeSpotInstanceRequests, DescribeVolumes asked with neither a filter
// nor pagination): a smaller bucket, 50, refill 10/s. Mutating: 50, refill
// 5/s. Resource-intensive (AuthorizeSecurityGroupIngress,
// RevokeSecurityGroupIngress, among others): 50, refill 5/s. Uncategorized,
// each its own: AssignIpv6Addresses 100, 5/s; RunInstances and
// StartInstances 5, 2/s; TerminateInstances 100, 5/s. A throttled call gets
// RequestLimitExceeded (HTTP 503).
//
// Elastic Load Balancing ("Request throttling for the ELB API",
// https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html):
// each API version (v2: ALB/NLB; v1: Classic) has its own buckets, by
// category: non-mutating (Describe*) 40, refill 10/s; mutating (e.g.
// SetIpAddressType) 20, 3/s; registration (RegisterTargets,
// DeregisterTargets, and v1's instance registration) 20, 4/s;
// resource-intensive (CreateLoadBalancer, SetSubnets, v1's subnet and zone
// changes) 10, 0.2/s; and an account-level bucket of 40, refill 10/s that
// every call draws from too. The page names the error ThrottlingException,
// "Rate exceeded"; the query API answers code Throttling with HTTP 400, as
// the SDKs see it, and so does the model (the SDK retries both alike).
//
// Route 53 ("Throttling for Amazon Route 53 API requests",
// https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html):
// an account-level bucket of 50, refill 10/s, and by default the same for
// each action; a throttled call gets HTTP 400, code Throttling, "Rate
// exceeded". (PriorRequestNotComplete, for a change to a zone while its
// previous change is PENDING, cannot happen against moto, whose changes
// are INSYNC at once: not modelled.)
//
// Buckets refill continuously (AWS documents refills "every second"; a
// continuous refill is the same rate without the one-second steps).

// Bucket is one token bucket of the model.
type Bucket struct {
	Capacity float64 // the burst
	Refill   float64 // tokens a second
}

// ThrottleOptions turn the proxy's throttling model on.
type ThrottleOptions struct {
	// Background is the share (0 to 1) of every bucket that other tools of
	// the same account take: each bucket starts with that share of its
	// capacity gone, and they keep drawing that share of its refill (a
	// bucket left alone still fills up: the refill outpaces them).
	Background float64
}

type bucketState struct {
	Bucket
	tokens float64
	at     time.Time
}

type throttleModel struct {
	opts    ThrottleOptions
	buckets map[string]*bucketState
}

// take draws one token from every bucket the call needs, or none: false
// is a throttled call.
func (m *throttleModel) take(keys []string, limits []Bucket, now time.Time) bool {
	states := make([]*bucketState, len(keys))
	for i, k := range keys {
		b := m.buckets[k]
		if b == nil {
			b = &bucketState{Bucket: limits[i], tokens: limits[i].Capacity * (1 - m.opts.Background), at: now}
			m.buckets[k] = b
		}
		dt := now.Sub(b.at).Seconds()
		b.at = now
		b.tokens = min(b.Capacity, b.tokens+(1-m.opts.Background)*b.Refill*dt)
		if b.tokens < 1 {
			return false
		}
		states[i] = b
	}
	for _, b := range states {
		b.tokens--
	}
	return true
}

// readOnlyAction: AWS's non-mutating actions, by name.
func readOnlyAction(action string) bool {
	for _, p := range []string{"Describe", "List", "Get", "Search"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// ThrottleBuckets are the buckets a call draws from, by key (a call is
// throttled when one of them is empty), as the model above says; none for
// a service it does not throttle (sts, moto's own API).
func ThrottleBuckets(op AWSOp) (keys []string, limits []Bucket) {
	switch op.Service {
	case "ec2":
		return []string{"ec2/" + ec2BucketName(op)}, []Bucket{ec2Bucket(op)}
	case "elasticloadbalancing":
		version := "v2"
		if op.Params.Get("Version") == "2012-06-01" {
			version = "v1"
		}
		cat, b := elbCategory(op.Action)
		return []string{"elb" + version + "/" + cat, "elb" + version + "/account"}, []Bucket{b, {Capacity: 40, Refill: 10}}
	case "route53":
		return []string{"route53/" + op.Action, "route53/account"}, []Bucket{{Capacity: 50, Refill: 10}, {Capacity: 50, Refill: 10}}
	}
	return nil, nil
}

// unfilteredActions draw from the smaller bucket when asked with neither a
// filter nor pagination.
var unfilteredActions = map[string]bool{"DescribeInstances": true, "DescribeInstanceStatus": true, "DescribeNetworkInterfaces": true,
	"DescribeSecurityGroups": true, "DescribeSnapshots": true, "DescribeSpotInstanceRequests": true, "DescribeVolumes": true}

func ec2Unfiltered(p url.Values) bool {
	for k := range p {
		if strings.HasPrefix(k, "Filter.") || k == "MaxResults" || k == "NextToken" {
			return false
		}
	}
	return true
}

func ec2BucketName(op AWSOp) string {
	if unfilteredActions[op.Action] && ec2Unfiltered(op.Params) {
		return op.Action + " (unfiltered, unpaginated)"
	}
	return op.Action
}

func ec2Bucket(op AWSOp) Bucket {
	switch op.Action {
	case "AssignIpv6Addresses", "TerminateInstances":
		return Bucket{Capacity: 100, Refill: 5}
	case "RunInstances", "StartInstances":
		return Bucket{Capacity: 5, Refill: 2}
	}
	if readOnlyAction(op.Action) {
		if unfilteredActions[op.Action] && ec2Unfiltered(op.Params) {
			return Bucket{Capacity: 50, Refill: 10}
		}
		return Bucket{Capacity: 100, Refill: 20}
	}
	return Bucket{Capacity: 50, Refill: 5} // mutating and resource-intensive alike
}

func elbCategory(action string) (string, Bucket) {
	switch action {
	case "CreateLoadBalancer", "SetSubnets", "AttachLoadBalancerToSubnets", "DetachLoadBalancerFromSubnets",
		"EnableAvailabilityZonesForLoadBalancer", "DisableAvailabilityZonesForLoadBalancer":
		return "resource-intensive", Bucket{Capacity: 10, Refill: 0.2}
	case "RegisterTargets", "DeregisterTargets", "RegisterInstancesWithLoadBalancer", "DeregisterInstancesFromLoadBalancer":
		return "registration", Bucket{Capacity: 20, Refill: 4}
	}
	if readOnlyAction(action) {
		return "non-mutating", Bucket{Capacity: 40, Refill: 10}
	}
	return "mutating", Bucket{Capacity: 20, Refill: 3}
}

// throttleFault is AWS's answer to a call whose bucket is empty.
func throttleFault(service string) AWSFault {
	if service == "ec2" {
		return AWSFault{Status: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	}
	return AWSFault{Status: 400, Code: "Throttling", Message: "Rate exceeded"}
}

// Throttle turns the throttling model on (buckets full but for
// o.Background), or off with nil.
func (p *AWSProxy) Throttle(o *ThrottleOptions) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o == nil {
		p.throttle = nil
		return
	}
	p.throttle = &throttleModel{opts: *o, buckets: map[string]*bucketState{}}
}

// throttled is the model's answer to op (p.mu held), nil to let it through.
func (p *AWSProxy) throttled(op AWSOp) *AWSFault {
	if p.throttle == nil {
		return nil
	}
	keys, limits := ThrottleBuckets(op)
	if len(keys) == 0 || p.throttle.take(keys, limits, op.At) {
		return nil
	}
	f := throttleFault(op.Service)
	return &f
}

// ThrottledCount is how many recorded calls the model throttled.
func (p *AWSProxy) ThrottledCount() int {
	n := 0
	for _, o := range p.Ops() {
		if o.Throttled {
			n++
		}
	}
	return n
}

// BucketMinimum is the least time the calls let through (ops, throttled
// ones left out) take under the model with background share: for each
// bucket, (calls - what it holds at the start) / what it refills for us,
// the largest of them, and the bucket that sets it.
func BucketMinimum(ops []AWSOp, background float64) (time.Duration, string) {
	calls := map[string]int{}
	limit := map[string]Bucket{}
	for _, op := range ops {
		if op.Throttled {
			continue
		}
		keys, limits := ThrottleBuckets(op)
		for i, k := range keys {
			calls[k]++
			limit[k] = limits[i]
		}
	}
	var least time.Duration
	which := ""
	for k, n := range calls {
		b := limit[k]
		s := (float64(n) - b.Capacity*(1-background)) / (b.Refill * (1 - background))
		if d := time.Duration(s * float64(time.Second)); d > least {
			least, which = d, fmt.Sprintf("%s: %d calls, bucket %g, refill %g/s", k, n, b.Capacity, b.Refill)
		}
	}
	return least, which
}
