package harness

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/miekg/dns"
)

// FollowRoute53 makes the server answer the alias records of moto's Route
// 53 zones too, as Route 53's resolvers do: an alias A (AAAA) record gives
// its target load balancer's A (AAAA) answers, which LBDNS keeps; a name
// without an AAAA alias answers AAAA with no data. The public zones win
// over the private ones where both hold a name (this machine plays a client
// outside the VPC). It refreshes every 200ms until ctx ends.
func (s *DNSServer) FollowRoute53(ctx context.Context, cfg aws.Config) {
	r := route53.NewFromConfig(cfg)
	refresh := func() {
		zones, err := r.ListHostedZones(ctx, &route53.ListHostedZonesInput{})
		if err != nil {
			return
		}
		aliases := map[string]string{}
		for _, private := range []bool{false, true} {
			for _, z := range zones.HostedZones {
				if (z.Config != nil && z.Config.PrivateZone) != private {
					continue
				}
				p := route53.NewListResourceRecordSetsPaginator(r, &route53.ListResourceRecordSetsInput{HostedZoneId: z.Id})
				for p.HasMorePages() {
					page, err := p.NextPage(ctx)
					if err != nil {
						return
					}
					for _, rs := range page.ResourceRecordSets {
						if rs.AliasTarget == nil || (rs.Type != r53types.RRTypeA && rs.Type != r53types.RRTypeAaaa) {
							continue
						}
						name := dns.Fqdn(strings.ToLower(strings.ReplaceAll(aws.ToString(rs.Name), `\052`, "*")))
						key := name + "/" + string(rs.Type)
						if _, public := aliases[key]; public {
							continue
						}
						target := strings.TrimPrefix(dns.Fqdn(strings.ToLower(aws.ToString(rs.AliasTarget.DNSName))), "dualstack.")
						aliases[key] = target
					}
				}
			}
		}
		s.mu.Lock()
		s.aliases = aliases
		s.mu.Unlock()
	}
	refresh()
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
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
}
