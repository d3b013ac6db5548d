package aws

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
)

// fakeClock never waits: Sleep moves its time on.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func TestPacerBurstThenDocumentedRate(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := NewPacer(0, clock)
	start := clock.now
	// AssignIpv6Addresses: a bucket of 100, refilled 5 a second.
	for i := range 100 {
		if err := p.Wait(ctx, serviceEC2, "AssignIpv6Addresses"); err != nil {
			t.Fatal(err)
		}
		if clock.now != start {
			t.Fatalf("call %d of the burst waited %s", i+1, clock.now.Sub(start))
		}
	}
	for range 1900 {
		if err := p.Wait(ctx, serviceEC2, "AssignIpv6Addresses"); err != nil {
			t.Fatal(err)
		}
	}
	// (2000 - 100) / 5 = 380 s: the bucket-implied minimum, not more.
	if got := clock.now.Sub(start); got != 380*time.Second {
		t.Fatalf("2,000 calls took %s of the clock; want 6m20s", got)
	}
	// Another API has a bucket of its own, full.
	before := clock.now
	for range 50 {
		if err := p.Wait(ctx, serviceEC2, "ModifySubnetAttribute"); err != nil {
			t.Fatal(err)
		}
	}
	if clock.now != before {
		t.Fatalf("ModifySubnetAttribute waited %s for AssignIpv6Addresses' bucket", clock.now.Sub(before))
	}
	if left, paced := p.Estimate(serviceEC2, "ModifySubnetAttribute", 60); left != 12*time.Second || paced {
		t.Fatalf("estimate for 60 more ModifySubnetAttribute = %s, paced %v; want 12s (bucket empty, 5/s), not paced yet", left, paced)
	}
	if _, paced := p.Estimate(serviceEC2, "AssignIpv6Addresses", 1); !paced {
		t.Fatal("AssignIpv6Addresses' calls waited for its bucket, but it is not reported as paced")
	}
}

func TestPacerMaxRPSScalesTheBucket(t *testing.T) {
	p := NewPacer(2, newFakeClock())
	for _, tc := range []struct {
		service, action string
		want            Limit
	}{
		{serviceEC2, "AssignIpv6Addresses", Limit{Burst: 40, Rate: 2}},           // 100/5 scaled to 2/s
		{serviceEC2, "AuthorizeSecurityGroupIngress", Limit{Burst: 20, Rate: 2}}, // 50/5
		{serviceEC2, "StartInstances", Limit{Burst: 5, Rate: 2}},                 // already 2/s
		{serviceELBv2, "SetIpAddressType", Limit{Burst: 13, Rate: 2}},            // 20/3
		{"STS", "GetCallerIdentity", Limit{}},                                    // not paced
	} {
		if got := p.limitFor(tc.service, tc.action); got != tc.want {
			t.Errorf("%s %s: %+v; want %+v", tc.service, tc.action, got, tc.want)
		}
	}
	// An account whose limits AWS raised: the buckets grow in proportion.
	p = NewPacer(50, newFakeClock())
	for _, tc := range []struct {
		service, action string
		want            Limit
	}{
		{serviceEC2, "AssignIpv6Addresses", Limit{Burst: 1000, Rate: 50}},
		{serviceEC2, "DescribeVpcs", Limit{Burst: 250, Rate: 50}},
	} {
		if got := p.limitFor(tc.service, tc.action); got != tc.want {
			t.Errorf("%s %s: %+v; want %+v", tc.service, tc.action, got, tc.want)
		}
	}
}

// TestPacerELBSharedBucket: ELB's APIs draw from one account-level bucket
// (40, 10/s) besides their own.
func TestPacerELBSharedBucket(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := NewPacer(0, clock)
	start := clock.now
	for range 40 {
		_ = p.Wait(ctx, serviceELBv2, "DescribeLoadBalancers")
	}
	if clock.now != start {
		t.Fatalf("40 DescribeLoadBalancers waited %s", clock.now.Sub(start))
	}
	_ = p.Wait(ctx, serviceELBv2, "DescribeTags") // its own bucket is full, the shared one empty
	if waited := clock.now.Sub(start); waited != 100*time.Millisecond {
		t.Fatalf("DescribeTags after 40 DescribeLoadBalancers waited %s; want 100ms (the shared bucket refills 10/s)", waited)
	}
}

func TestPacerAdaptsToThrottling(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	p := NewPacer(0, clock)
	const api = "CreateRoute" // mutating: 50, 5/s
	_ = p.Wait(ctx, serviceEC2, api)
	p.Done(serviceEC2, api, true)
	st, _ := p.Stats(serviceEC2, api)
	if st.Rate != 4.5 || st.Throttled != 1 {
		t.Fatalf("after a throttle: %+v; want the rate cut to 4.5/s", st)
	}
	// AWS's bucket is empty, so is ours: the next call waits a token.
	start := clock.now
	_ = p.Wait(ctx, serviceEC2, api)
	if waited := clock.now.Sub(start); waited < 200*time.Millisecond {
		t.Fatalf("the call after a throttle waited only %s", waited)
	}
	// Throttles of concurrent calls in the same second are one signal.
	p.Done(serviceEC2, api, true)
	if st, _ := p.Stats(serviceEC2, api); st.Rate != 4.5 {
		t.Fatalf("a second throttle within a second cut the rate again: %+v", st)
	}
	// Quiet for a while: the rate grows back by 5% of 5/s every 2 s, up to 5.
	for range 10 {
		clock.now = clock.now.Add(2 * time.Second)
		p.Done(serviceEC2, api, false)
	}
	if st, _ := p.Stats(serviceEC2, api); st.Rate != 5 {
		t.Fatalf("after 20 s without a throttle the rate is %v; want back at 5", st.Rate)
	}
}

// awsBucket is the other side: AWS's bucket for one API, which other
// tools of the account draw from too (share of its refill; left alone, it
// still fills up).
type awsBucket struct {
	tokens, burst, rate, share float64
	at                         time.Time
}

func (b *awsBucket) take(now time.Time) bool {
	dt := now.Sub(b.at).Seconds()
	b.at = now
	b.tokens = min(b.burst, b.tokens+(1-b.share)*b.rate*dt)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// TestPacerAgainstASharedBucket runs 2,000 AssignIpv6Addresses calls, one
// after another with retries, against AWS's bucket while other tools take
// 30% of it: every call gets through within the SDK's 6 attempts, and the
// whole takes at most 1.15 times what the bucket allows.
func TestPacerAgainstASharedBucket(t *testing.T) {
	ctx := context.Background()
	for _, share := range []float64{0, 0.3, 0.6} {
		t.Run(fmt.Sprintf("others take %.0f%%", share*100), func(t *testing.T) {
			clock := newFakeClock()
			p := NewPacer(0, clock)
			start := clock.now
			aws := &awsBucket{tokens: 100 * (1 - share), burst: 100, rate: 5, share: share, at: start}
			throttled, maxAttempts := 0, 0
			const calls = 2000
			for range calls {
				attempts := 0
				for {
					attempts++
					if err := p.Wait(ctx, serviceEC2, "AssignIpv6Addresses"); err != nil {
						t.Fatal(err)
					}
					ok := aws.take(clock.now)
					p.Done(serviceEC2, "AssignIpv6Addresses", !ok)
					if ok {
						break
					}
					throttled++
				}
				maxAttempts = max(maxAttempts, attempts)
			}
			took := clock.now.Sub(start).Seconds()
			least := (calls - 100*(1-share)) / (5 * (1 - share))
			t.Logf("%.0f s against at least %.0f s (%.2fx); %d throttled, at most %d attempts a call", took, least, took/least, throttled, maxAttempts)
			if took > 1.15*least {
				t.Errorf("took %.0f s, more than 1.15 x the bucket's %.0f s", took, least)
			}
			if maxAttempts > 6 {
				t.Errorf("a call needed %d attempts: more than the SDK's 6", maxAttempts)
			}
			if share == 0 && throttled > 0 {
				t.Errorf("%d calls throttled with the bucket to itself", throttled)
			}
		})
	}
}

// TestPacerMiddlewareSeesEC2Throttling: through the SDK, a call EC2
// answers with RequestLimitExceeded (HTTP 503) is sent again by the pacer
// itself (the SDK's retryer here makes one attempt only), and the pacer
// counts both attempts and the throttle.
func TestPacerMiddlewareSeesEC2Throttling(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r1</RequestID></Response>`)
			return
		}
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r2</requestId><vpcSet/></DescribeVpcsResponse>`)
	}))
	defer srv.Close()
	p := NewPacer(0, newFakeClock())
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer:     aws.NopRetryer{},
		APIOptions:  []func(*middleware.Stack) error{p.Middleware}})
	if _, err := c.DescribeVpcs(context.Background(), &ec2.DescribeVpcsInput{}); err != nil {
		t.Fatalf("DescribeVpcs: %v", err)
	}
	st, ok := p.Stats(serviceEC2, "DescribeVpcs")
	if !ok || st.Calls != 2 || st.Throttled != 1 {
		t.Fatalf("pacer saw %+v (ok %v); want 2 calls, 1 throttled", st, ok)
	}
	if st.Limit != (Limit{Burst: 100, Rate: 20}) {
		t.Fatalf("DescribeVpcs paced at %+v; want EC2's non-mutating 100, 20/s", st.Limit)
	}
}

func TestStatusLines(t *testing.T) {
	s := Status{Starting: true, Ops: []OpProgress{
		{Operation: "AssociateSubnetCidrBlock", Service: "EC2", Total: 200, Left: 30 * time.Second},
		{Operation: "AssignIpv6Addresses", Service: "EC2", Total: 2000, Left: 380 * time.Second},
		{Operation: "SetIpAddressType", Service: "ELB", Total: 2},
	}}
	if got, want := s.Summary(), "200 AssociateSubnetCidrBlock, 2000 AssignIpv6Addresses, 2 SetIpAddressType: at least ~6m20s at EC2's limits"; got != want {
		t.Errorf("Summary() = %q\nwant %q", got, want)
	}
	s.Starting = false
	s.Ops[0].Done = 200
	s.Ops[1].Done, s.Ops[1].Left, s.Ops[1].Paced = 840, 130*time.Second, true
	if got, want := s.Line(), "AssignIpv6Addresses 840/2000, ~2m10s left (paced by EC2's limit)"; got != want {
		t.Errorf("Line() = %q\nwant %q", got, want)
	}
	var tty, log []string
	for _, st := range []Status{{Starting: true, Ops: s.Ops}, s} {
		StatusPrinter(func(l string) { tty = append(tty, l) }, true)(st)
		StatusPrinter(func(l string) { log = append(log, l) }, false)(st)
	}
	if len(tty) != 2 || len(log) != 1 {
		t.Errorf("a terminal got %q, a log %q; want a line per update there, one per stage here", tty, log)
	}
}
