package aws

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/time/rate"
)

// Limit is an API's request token bucket: Burst calls at once, then Rate
// calls a second.
type Limit struct {
	Burst float64
	Rate  float64
}

// Service IDs of the clients (their ServiceID constants), as the SDK's
// middleware names them.
const (
	serviceEC2   = "EC2"
	serviceELBv2 = "Elastic Load Balancing v2"
	serviceELB   = "Elastic Load Balancing"
	serviceR53   = "Route 53"
)

// DocumentedLimit is AWS's documented default request bucket of an API, the
// same for every account and region; the zero Limit for an API this package
// does not pace.
//
// EC2 ("Request throttling for the Amazon EC2 API",
// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
// each API has its own bucket per account and region. Non-mutating
// (Describe*) 100, refill 20/s; DescribeInstances, DescribeNetworkInterfaces
// and DescribeSecurityGroups, among others, asked without a filter or
// pagination draw from a smaller bucket of 50, refill 10/s (this package
// always filters or pages, but the smaller bucket is the safe guess);
// mutating 50, refill 5/s; resource-intensive (AuthorizeSecurityGroupIngress,
// RevokeSecurityGroupIngress) 50, refill 5/s; uncategorized actions have
// their own: AssignIpv6Addresses 100, 5/s; StartInstances and RunInstances
// 5, 2/s.
//
// Route 53 ("Quotas on API requests",
// https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html):
// five requests a second per account, for all of its APIs together.
//
// Elastic Load Balancing ("Request throttling for the ELB API",
// https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html):
// each API version (v2: NLB/ALB; v1: Classic) has its own buckets.
// Non-mutating 40, refill 10/s; mutating (SetIpAddressType) 20, refill 3/s;
// and an account-level bucket of 40, refill 10/s shared by all of them.
func DocumentedLimit(service, action string) Limit {
	switch service {
	case serviceEC2:
		switch action {
		case "AssignIpv6Addresses":
			return Limit{Burst: 100, Rate: 5}
		case "StartInstances", "RunInstances":
			return Limit{Burst: 5, Rate: 2}
		case "DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces", "DescribeSecurityGroups",
			"DescribeSnapshots", "DescribeSpotInstanceRequests", "DescribeVolumes":
			return Limit{Burst: 50, Rate: 10}
		}
		if readOnly(action) {
			return Limit{Burst: 100, Rate: 20}
		}
		return Limit{Burst: 50, Rate: 5}
	case serviceELBv2, serviceELB:
		if readOnly(action) {
			return Limit{Burst: 40, Rate: 10}
		}
		return Limit{Burst: 20, Rate: 3}
	case serviceR53:
		return Limit{Burst: 5, Rate: 5}
	}
	return Limit{}
}

// readOnly tells the non-mutating actions by name, as AWS groups them.
func readOnly(action string) bool {
	for _, p := range []string{"Describe", "List", "Get", "Search"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// sharedLimit is the documented bucket every API of a service draws from
// as well, if it has one: ELB's account-level bucket, 40, refill 10/s, per
// API version.
func sharedLimit(service string) Limit {
	switch service {
	case serviceELBv2, serviceELB:
		return Limit{Burst: 40, Rate: 10}
	case serviceR53:
		return Limit{Burst: 5, Rate: 5}
	}
	return Limit{}
}

// serviceName is how a message names the service whose limit paces a call.
func serviceName(service string) string {
	switch service {
	case serviceELBv2, serviceELB:
		return "ELB"
	}
	return service
}

// Clock is the time the pacer waits by; tests give it a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// How the pacer adapts to what AWS answers: a throttled call means AWS's
// bucket is empty (other tools of the account draw from it too), so ours is
// emptied and the rate cut by cutFactor, at most once per cutEvery (a burst
// of throttled concurrent calls is one signal); every raiseEvery without a
// throttle, the rate grows by raiseStep of the documented rate, up to it.
const (
	cutFactor  = 0.9
	cutEvery   = time.Second
	raiseEvery = 2 * time.Second
	raiseStep  = 0.05
	minShare   = 0.02 // the rate is never cut below this share of the documented one
	pacedFor   = 2 * time.Second
)

// Pacer keeps each AWS API's calls within a token bucket sized from AWS's
// documented defaults (DocumentedLimit), one per API, so that independent
// APIs go on at their own pace. It adapts down when AWS throttles a call
// anyway and up again while it does not. One Pacer serves all the clients
// of one account and region; it is safe for concurrent use.
type Pacer struct {
	clock  Clock
	maxRPS float64 // 0: the documented rates
	mu     sync.Mutex
	apis   map[string]*apiPace
}

type apiPace struct {
	doc       Limit // after maxRPS
	lim       *rate.Limiter
	rate      float64
	lastCut   time.Time
	lastRaise time.Time
	throttled int
	calls     int
	waitedAt  time.Time // when a call last had to wait for a token
}

// NewPacer paces at the documented rates, or at maxRPS calls a second per
// API when maxRPS > 0 (below the documented rate: leaving the rest of each
// bucket to other tools of the account; above it: an account whose limits
// AWS raised); clock nil is the real clock.
func NewPacer(maxRPS float64, clock Clock) *Pacer {
	if clock == nil {
		clock = realClock{}
	}
	return &Pacer{clock: clock, maxRPS: maxRPS, apis: map[string]*apiPace{}}
}

// limitFor is the bucket this pacer keeps for an API: the documented one,
// or scaled to maxRPS (the burst in the same proportion): down, to leave
// room for other tools; up, for an account whose limits AWS raised on
// request.
func (p *Pacer) limitFor(service, action string) Limit {
	return p.scale(DocumentedLimit(service, action))
}

func (p *Pacer) scale(l Limit) Limit {
	if l.Rate == 0 || p.maxRPS <= 0 || p.maxRPS == l.Rate {
		return l
	}
	return Limit{Burst: max(1, math.Floor(l.Burst*p.maxRPS/l.Rate)), Rate: p.maxRPS}
}

// api is the action's bucket, and the service's shared one if it has one
// (key service+"/*"); nil if the action is not paced.
func (p *Pacer) api(service, action string) (a, shared *apiPace) {
	a = p.bucket(service+"/"+action, p.limitFor(service, action))
	if a == nil {
		return nil, nil
	}
	return a, p.bucket(service+"/*", p.scale(sharedLimit(service)))
}

func (p *Pacer) bucket(key string, l Limit) *apiPace {
	if a := p.apis[key]; a != nil {
		return a
	}
	if l.Rate == 0 {
		return nil
	}
	// A new limiter starts full, as AWS's bucket does after a quiet while.
	a := &apiPace{doc: l, rate: l.Rate, lim: rate.NewLimiter(rate.Limit(l.Rate), int(l.Burst))}
	p.apis[key] = a
	return a
}

// Wait blocks until the API may be called (or ctx is done).
func (p *Pacer) Wait(ctx context.Context, service, action string) error {
	p.mu.Lock()
	a, shared := p.api(service, action)
	if a == nil {
		p.mu.Unlock()
		return nil
	}
	now := p.clock.Now()
	rs := []*rate.Reservation{a.lim.ReserveN(now, 1)}
	if shared != nil {
		rs = append(rs, shared.lim.ReserveN(now, 1))
	}
	var d time.Duration
	for _, r := range rs {
		d = max(d, r.DelayFrom(now))
	}
	a.calls++
	if d > 0 {
		a.waitedAt = now.Add(d)
	}
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if err := p.clock.Sleep(ctx, d); err != nil {
		for _, r := range rs {
			r.CancelAt(p.clock.Now())
		}
		return err
	}
	return nil
}

// Done tells the pacer how a call of the API ended: throttled or not. A
// throttled call of an API with a shared bucket slows both down: which of
// them was empty, AWS does not say.
func (p *Pacer) Done(service, action string, throttled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, shared := p.api(service, action)
	if a == nil {
		return
	}
	now := p.clock.Now()
	a.done(now, throttled)
	if shared != nil {
		shared.done(now, throttled)
	}
}

func (a *apiPace) done(now time.Time, throttled bool) {
	if throttled {
		a.throttled++
		// AWS's bucket is empty: so is ours.
		if t := a.lim.TokensAt(now); t >= 1 {
			a.lim.ReserveN(now, int(t))
		}
		if now.Sub(a.lastCut) >= cutEvery {
			a.rate = max(a.rate*cutFactor, a.doc.Rate*minShare)
			a.lastCut = now
			a.lim.SetLimitAt(now, rate.Limit(a.rate))
		}
		return
	}
	if a.rate < a.doc.Rate && now.Sub(a.lastCut) >= raiseEvery && now.Sub(a.lastRaise) >= raiseEvery {
		a.rate = min(a.doc.Rate, a.rate+raiseStep*a.doc.Rate)
		a.lastRaise = now
		a.lim.SetLimitAt(now, rate.Limit(a.rate))
	}
}

// APIPace is what the pacer knows of one API.
type APIPace struct {
	Limit     Limit   // the bucket paced to (documented, or scaled to --max-aws-rps)
	Rate      float64 // the current rate, after adapting to throttles
	Calls     int     // calls let through (attempts, retries included)
	Throttled int     // calls AWS answered with a throttling error
}

// Stats is what the pacer knows of an API; ok false if it was never called.
func (p *Pacer) Stats(service, action string) (APIPace, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apis[service+"/"+action]
	if a == nil {
		return APIPace{}, false
	}
	return APIPace{Limit: a.doc, Rate: a.rate, Calls: a.calls, Throttled: a.throttled}, true
}

// Estimate is how long n more calls of the API take at its current pace,
// and whether calls are waiting for its limit now (paced) rather than
// going as fast as AWS answers.
func (p *Pacer) Estimate(service, action string, n int) (left time.Duration, paced bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, _ := p.api(service, action)
	if a == nil || n <= 0 {
		return 0, false
	}
	now := p.clock.Now()
	need := float64(n) - max(0, a.lim.TokensAt(now))
	if need > 0 {
		left = time.Duration(need / a.rate * float64(time.Second))
	}
	return left, !a.waitedAt.IsZero() && now.Sub(a.waitedAt) < pacedFor
}

// throttles are the errors AWS answers when a bucket is empty: EC2's
// RequestLimitExceeded, ELB's and Route 53's Throttling, and the rest the
// SDK's retryer knows.
var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// isThrottle tells whether err is AWS saying slow down.
func isThrottle(err error) bool {
	return err != nil && throttles.IsErrorThrottle(err) == aws.TrueTernary
}

// throttledRetries bounds how often the pacer itself sends a throttled
// call again, each time after a token of the slowed-down bucket, before
// it leaves the throttling error to the SDK's retryer (which then backs
// off and tries again, up to its attempts, each through the pacer too).
const throttledRetries = 20

// Middleware is the pacer as an SDK API option. It sits after the retry
// middleware, so every attempt waits for its API's token; a throttled
// attempt is sent again by the pacer itself, after the next token of the
// slowed-down bucket, without using up the SDK's attempts (which are for
// errors that pacing does not fix).
func (p *Pacer) Middleware(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("kubectl-dualstack/Pace",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			service, action := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
			req, _ := in.Request.(*smithyhttp.Request)
			for n := 0; ; n++ {
				if err := p.Wait(ctx, service, action); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				attempt := in
				if req != nil {
					r := req.Clone()
					if err := r.RewindStream(); err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("sending a throttled call again: %w", err)
					}
					attempt.Request = r
				}
				out, md, err := next.HandleFinalize(ctx, attempt)
				throttled := isThrottle(err)
				p.Done(service, action, throttled)
				if !throttled || n >= throttledRetries || req == nil {
					return out, md, err
				}
			}
		}), "Retry", middleware.After)
}
