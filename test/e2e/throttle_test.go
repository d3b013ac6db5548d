package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// unpaced is a --max-aws-rps far above AWS's documented rates, for runs
// that measure moto's speed rather than AWS's limits.
const unpaced = "100000"

// others is the share of every AWS bucket the throttling tests give to
// other tools of the account: enough that the sandbox's few calls per API
// run into an empty bucket (a mutating API's bucket starts at 5 of 50
// tokens and refills 0.5 a second for us).
const others = 0.9

// throttledByAction counts the calls the proxy's model throttled, by
// service:action.
func throttledByAction(ops []harness.AWSOp) map[string]int {
	n := map[string]int{}
	for _, o := range ops {
		if o.Throttled {
			n[o.IAM()]++
		}
	}
	return n
}

// TestThrottledUpgrade: with AWS's request throttling modelled in the
// proxy and other tools of the account taking 90% of every bucket,
// `upgrade` converts the sandbox: AWS answers RequestLimitExceeded, the
// plugin slows down and retries, and not one change fails.
func TestThrottledUpgrade(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	proxy := awsProxy(t)
	proxy.Throttle(&harness.ThrottleOptions{Background: others})
	kcfg, env := s.API.Kubeconfig, proxy.Env(awsTLS.Env())

	start := time.Now()
	r := plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "3m", "-o", "json")
	u := parseUpgrade(t, r)
	t.Logf("upgrade under throttling took %s; throttled answers by action: %v", time.Since(start).Round(time.Millisecond), throttledByAction(proxy.Ops()))
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade under throttling: outcome %q\n%s", u.Outcome, r)
	}
	if proxy.ThrottledCount() == 0 {
		t.Fatal("AWS throttled no call: the test proves nothing about throttling")
	}
}

// TestThrottledApplyParallel16: `aws apply --parallel 16` under the same
// throttling completes, with one AuthorizeSecurityGroupIngress/Egress per
// group and direction, and rollback (throttled too) restores the VPC
// exactly.
func TestThrottledApplyParallel16(t *testing.T) {
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	proxy := awsProxy(t)
	proxy.Throttle(&harness.ThrottleOptions{Background: others})
	env := proxy.Env(motoEnv)
	before := awsSnapshot(t, world.AWS.VPC.ID)

	plan := parseAWSPlan(t, plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json"))
	rules := plan.count("AuthorizeSecurityGroupIngress") + plan.count("AuthorizeSecurityGroupEgress")
	groups := map[string]bool{}
	for _, c := range plan.Changes {
		if strings.HasPrefix(c.Operation, "AuthorizeSecurityGroup") {
			groups[c.Operation+" "+c.Resource] = true
		}
	}
	proxy.Reset()
	r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "--parallel", "16", "-o", "json")
	t.Logf("apply --parallel 16: throttled answers by action: %v", throttledByAction(proxy.Ops()))
	if r.Code != 0 {
		t.Fatalf("aws apply --parallel 16 under throttling:\n%s", r)
	}
	var res struct {
		Changes []struct{ Operation, Resource, Status, Error string } `json:"changes"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("aws apply -o json: %v\n%s", err, r.Stdout)
	}
	if len(res.Changes) != len(plan.Changes) {
		t.Errorf("apply reports %d changes, the plan has %d: the results keep one entry per planned change", len(res.Changes), len(plan.Changes))
	}
	for _, c := range res.Changes {
		if c.Status != "applied" {
			t.Errorf("%s %s: %s %s", c.Operation, c.Resource, c.Status, c.Error)
		}
	}
	if proxy.ThrottledCount() == 0 {
		t.Error("AWS throttled no call: the test proves nothing about throttling")
	}
	calls := 0
	for _, o := range proxy.Ops() {
		if strings.HasPrefix(o.Action, "AuthorizeSecurityGroup") && !o.Throttled {
			calls++
		}
	}
	if calls != len(groups) || rules <= len(groups) {
		t.Errorf("%d Authorize calls reached AWS for %d rules in %d groups and directions; want one per group and direction", calls, rules, len(groups))
	}
	checkDualStack(t, world.AWS)

	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback under throttling:\n%s", r)
	}
	if got := awsSnapshot(t, world.AWS.VPC.ID); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("rollback under throttling did not restore the state:\n%s", diffLines(before, got))
	}
	revokes := 0
	for _, o := range proxy.Ops() {
		if strings.HasPrefix(o.Action, "RevokeSecurityGroup") && !o.Throttled {
			revokes++
		}
	}
	if revokes != len(groups) {
		t.Errorf("%d Revoke calls reached AWS for %d groups and directions; want one each", revokes, len(groups))
	}
}

// TestThrottleModelAnswersAsAWS: the model's answers, through the proxy,
// are what the SDK sees from AWS: EC2's RequestLimitExceeded with HTTP 503
// once an API's bucket is empty, ELB's Throttling with HTTP 400; other
// APIs unaffected.
func TestThrottleModelAnswersAsAWS(t *testing.T) {
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	proxy := awsProxy(t)
	// Other tools take nearly all: EC2's Describe bucket of 100 starts with
	// 2 tokens, ELB's of 40 with 0.8 (none).
	proxy.Throttle(&harness.ThrottleOptions{Background: 0.98})
	cfg, err := awsTLS.AWSConfig(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(proxy.URL)
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	e := ec2.NewFromConfig(cfg)
	var errs []error
	for range 3 {
		_, err := e.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("the first two DescribeVpcs (2 tokens): %v", errs[:2])
	}
	var api smithy.APIError
	var resp *awshttp.ResponseError
	if !errors.As(errs[2], &api) || api.ErrorCode() != "RequestLimitExceeded" || !errors.As(errs[2], &resp) || resp.HTTPStatusCode() != 503 {
		t.Fatalf("the third DescribeVpcs: %v; want RequestLimitExceeded, HTTP 503", errs[2])
	}
	if _, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); err != nil {
		t.Fatalf("DescribeSubnets has a bucket of its own: %v", err)
	}
	_, err = elbv2.NewFromConfig(cfg).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if !errors.As(err, &api) || api.ErrorCode() != "Throttling" || !errors.As(err, &resp) || resp.HTTPStatusCode() != 400 {
		t.Fatalf("ELB's DescribeLoadBalancers with an empty bucket: %v; want Throttling, HTTP 400", err)
	}
	if n := proxy.ThrottledCount(); n != 2 {
		t.Fatalf("the proxy counts %d throttled calls; want 2", n)
	}
}

// TestMaxAWSRPSBadValue: a negative --max-aws-rps is a usage error (exit
// 2), before the cluster or AWS is asked anything.
func TestMaxAWSRPSBadValue(t *testing.T) {
	r := plugin(t, "", nil, "aws", "plan", "--max-aws-rps", "-1")
	if r.Code != 2 || !strings.Contains(r.Stderr, "--max-aws-rps") {
		t.Fatalf("aws plan --max-aws-rps -1:\n%s", r)
	}
}
