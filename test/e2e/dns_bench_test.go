package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// route53Calls counts the proxy's Route 53 calls by action.
func route53Calls(p *harness.AWSProxy) (total, lists, changes int) {
	for _, op := range p.Ops() {
		if op.Service != "route53" {
			continue
		}
		total++
		switch op.Action {
		case "ListResourceRecordSets":
			lists++
		case "ChangeResourceRecordSets":
			changes++
		}
	}
	return total, lists, changes
}

// BenchmarkRoute53AtScale: a private zone with 5,000 alias records to the
// internal API NLB (-short: 500) gets its AAAA twins from `dns apply`: the
// zone is read in pages of 300 and changed in batches of 1,000. The anchor
// is the obvious way, one ChangeResourceRecordSets per record (as a loop
// over `aws route53 change-resource-record-sets` does), measured in the same
// run against the same moto. Route 53 allows 5 calls a second per account,
// so at-5rps-s/op is the least time each would take on AWS.
func BenchmarkRoute53AtScale(b *testing.B) {
	n := 5000
	if testing.Short() {
		n = 500
	}
	kubeconfig, proxy, env := benchWorld(b, moto.IPIOptions{HostedZones: &moto.HostedZoneOptions{ExtraAliases: n}})
	benchPlugin(b, kubeconfig, env, "aws", "apply", "--yes") // the NLBs dual-stack
	ctx := context.Background()
	cfg, err := awsTLS.AWSConfig(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(proxy.URL)
	r53 := route53.NewFromConfig(cfg)

	zone := privateZoneID(b, r53)
	// counts add up each iteration's calls (the proxy is reset between
	// iterations, as the untimed rollbacks call Route 53 too).
	type counts struct {
		total, lists, changes, iterations int
		elapsed                           time.Duration
	}
	add := func(c *counts, elapsed time.Duration) {
		t, l, ch := route53Calls(proxy)
		c.total, c.lists, c.changes = c.total+t, c.lists+l, c.changes+ch
		c.iterations++
		c.elapsed += elapsed
	}
	report := func(b *testing.B, c counts) {
		n := float64(c.iterations)
		b.ReportMetric(float64(c.total)/n, "route53-calls/op")
		b.ReportMetric(float64(c.lists)/n, "list-calls/op")
		b.ReportMetric(float64(c.changes)/n, "change-calls/op")
		b.ReportMetric(float64(c.total)/n/5, "at-5rps-s/op")
		b.ReportMetric(c.elapsed.Seconds()/n, "s/op")
	}

	b.Run(fmt.Sprintf("records=%d/dns-apply", n), func(b *testing.B) {
		var c counts
		proxy.Reset()
		for b.Loop() {
			start := time.Now()
			benchPlugin(b, kubeconfig, env, "dns", "apply", "--yes")
			elapsed := time.Since(start)
			b.StopTimer()
			add(&c, elapsed)
			if c.changes == 0 {
				b.Fatal("dns apply made no change")
			}
			benchPlugin(b, kubeconfig, env, "dns", "rollback", "--yes")
			proxy.Reset()
			b.StartTimer()
		}
		report(b, c)
	})

	b.Run(fmt.Sprintf("records=%d/anchor=one-call-per-record", n), func(b *testing.B) {
		var c counts
		proxy.Reset()
		for b.Loop() {
			start := time.Now()
			// List the zone, then one change per alias A record to the NLB.
			var records []r53types.ResourceRecordSet
			p := route53.NewListResourceRecordSetsPaginator(r53, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				records = append(records, page.ResourceRecordSets...)
			}
			var made []r53types.ResourceRecordSet
			for _, rs := range records {
				if rs.Type != r53types.RRTypeA || rs.AliasTarget == nil || !strings.Contains(aws.ToString(rs.AliasTarget.DNSName), "-int-") {
					continue
				}
				aaaa := rs
				aaaa.Type = r53types.RRTypeAaaa
				if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
					ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionCreate, ResourceRecordSet: &aaaa}}}}); err != nil {
					b.Fatal(err)
				}
				made = append(made, aaaa)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			add(&c, elapsed)
			var del []r53types.Change
			for i := range made {
				del = append(del, r53types.Change{Action: r53types.ChangeActionDelete, ResourceRecordSet: &made[i]})
			}
			for start := 0; start < len(del); start += 1000 {
				if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
					ChangeBatch: &r53types.ChangeBatch{Changes: del[start:min(start+1000, len(del))]}}); err != nil {
					b.Fatal(err)
				}
			}
			proxy.Reset()
			b.StartTimer()
		}
		report(b, c)
	})
}

func privateZoneID(b *testing.B, r *route53.Client) string {
	b.Helper()
	out, err := r.ListHostedZones(context.Background(), &route53.ListHostedZonesInput{})
	if err != nil {
		b.Fatal(err)
	}
	for _, z := range out.HostedZones {
		if z.Config != nil && z.Config.PrivateZone {
			return strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
		}
	}
	b.Fatal("no private zone")
	return ""
}
