// Package dns is the dns phase: the names users reach the cluster by get
// their IPv6 answer. A dual-stack load balancer answers AAAA on its own
// name, but the installer's records (api, api-int, *.apps), the ingress
// operator's and external-dns's are alias A records only; AWS's guidance
// for a dual-stack load balancer is an A and an AAAA alias record.
//
// The phase finds the cluster's hosted zones, plans the AAAA twin of every
// alias A record whose target is a load balancer that is (or the
// conversion makes) dual-stack, with the same alias target and routing
// settings, applies them in one change batch per zone (journalled), and
// rolls back exactly the records it added. Plain A records are reported,
// never invented.
package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
)

// Layer is the journal layer of the records this package adds.
const Layer = "dns"

// Zone is a hosted zone of the cluster.
type Zone struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Private bool   `json:"private"`
	// FoundBy says how the zone was found (--hosted-zone, the cluster's
	// DNS config, its association with the VPC).
	FoundBy string `json:"foundBy"`
}

// Target is a load balancer an alias record can point at.
type Target struct {
	LoadBalancer string `json:"loadBalancer"`
	Type         string `json:"type"` // network, application, classic
	Service      string `json:"service,omitempty"`
	// DualStack: it answers AAAA now; Planned: the conversion makes it so.
	DualStack bool `json:"dualStack"`
	Planned   bool `json:"planned,omitempty"`
}

// Change is one AAAA record to add. Field names are stable (-o json).
type Change struct {
	ID            string `json:"id"`
	ZoneID        string `json:"zoneId"`
	ZoneName      string `json:"zoneName"`
	Name          string `json:"name"`
	SetIdentifier string `json:"setIdentifier,omitempty"`
	AliasTarget   string `json:"aliasTarget"`
	LoadBalancer  string `json:"loadBalancer"`
	Reason        string `json:"reason"`
	// Record is the AAAA record set as it is created.
	Record r53types.ResourceRecordSet `json:"-"`
}

// Plan is what the dns phase will do.
type Plan struct {
	Zones   []Zone       `json:"zones"`
	Changes []Change     `json:"changes"`
	Notes   []awsx.Note  `json:"notes"`
	Counts  RecordCounts `json:"counts"`
}

// RecordCounts say what the plan read.
type RecordCounts struct {
	Records    int `json:"records"`
	AliasA     int `json:"aliasA"`
	WithAAAA   int `json:"aliasAWithAAAA"`
	PlainA     int `json:"plainA"`
	OtherAlias int `json:"aliasToOtherTargets"`
}

// BadInputError is a --hosted-zone the phase cannot use: the commands
// refuse it before anything changes (exit 2).
type BadInputError struct{ msg string }

func (e *BadInputError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &BadInputError{msg: fmt.Sprintf(format, args...)}
}

// ZoneOptions say where the cluster's zones are.
type ZoneOptions struct {
	VPCID, Region string
	// ZoneIDs are the --hosted-zone flags: IDs (Z..., or /hostedzone/Z...).
	ZoneIDs []string
	// From OpenShift's dns.config.openshift.io/cluster: the private zone
	// by ID or by tags, and the public zone's ID.
	PrivateZoneID   string
	PrivateZoneTags map[string]string
	PublicZoneID    string
	// ClusterDomain is the cluster's base domain (OpenShift's
	// spec.baseDomain), "" when not known: a --hosted-zone must hold it.
	ClusterDomain string
}

func trimZoneID(id string) string {
	return strings.TrimPrefix(strings.TrimPrefix(id, "/hostedzone/"), "hostedzone/")
}

// FindZones returns the cluster's hosted zones: those given, else those
// the cluster's DNS config names, else the private zones associated with
// its VPC. A given zone that does not exist, is private and not associated
// with the VPC, or does not hold the cluster's domain is bad input.
func FindZones(ctx context.Context, r awsx.Route53API, o ZoneOptions) ([]Zone, error) {
	var out []Zone
	add := func(z Zone) {
		if !slices.ContainsFunc(out, func(x Zone) bool { return x.ID == z.ID }) {
			out = append(out, z)
		}
	}
	for _, id := range o.ZoneIDs {
		z, vpcs, err := getZone(ctx, r, trimZoneID(id))
		var nf *r53types.NoSuchHostedZone
		switch {
		case errors.As(err, &nf) || awsx.ErrorCode(err) == "NoSuchHostedZone":
			return nil, badInput("--hosted-zone %s: no such hosted zone in this account; `aws route53 list-hosted-zones` lists them", id)
		case awsx.ErrorCode(err) == "InvalidInput":
			return nil, badInput("--hosted-zone %s: not a hosted zone ID (Z followed by letters and digits)", id)
		case err != nil:
			return nil, awsx.Explain("route53:GetHostedZone", err)
		}
		if z.Private && o.VPCID != "" && !slices.Contains(vpcs, o.VPCID) {
			return nil, badInput("--hosted-zone %s: private zone %s is not associated with the cluster's VPC %s (its VPCs: %s)", id, z.Name, o.VPCID, orNone(vpcs))
		}
		if d := strings.TrimSuffix(strings.ToLower(o.ClusterDomain), "."); d != "" {
			zn := strings.TrimSuffix(strings.ToLower(z.Name), ".")
			if d != zn && !strings.HasSuffix(d, "."+zn) {
				return nil, badInput("--hosted-zone %s: zone %s is for another domain; the cluster's names are under %s", id, z.Name, d)
			}
		}
		z.FoundBy = "--hosted-zone"
		add(z)
	}
	if len(o.ZoneIDs) > 0 {
		return out, nil
	}
	for _, id := range []string{o.PrivateZoneID, o.PublicZoneID} {
		if id == "" {
			continue
		}
		z, _, err := getZone(ctx, r, trimZoneID(id))
		if err != nil {
			return nil, fmt.Errorf("the cluster's DNS config names hosted zone %s: %w", id, awsx.Explain("route53:GetHostedZone", err))
		}
		z.FoundBy = "the cluster's DNS config (dns.config.openshift.io/cluster)"
		add(z)
	}
	if o.PrivateZoneID == "" && len(o.PrivateZoneTags) > 0 {
		zs, err := zonesByTags(ctx, r, o.PrivateZoneTags)
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			z.FoundBy = "the cluster's DNS config (private zone by tags)"
			add(z)
		}
	}
	if o.PrivateZoneID == "" && len(o.PrivateZoneTags) == 0 && o.VPCID != "" {
		zs, err := zonesOfVPC(ctx, r, o.VPCID, o.Region)
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			add(z)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Private && !out[b].Private })
	return out, nil
}

func getZone(ctx context.Context, r awsx.Route53API, id string) (Zone, []string, error) {
	out, err := r.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
	if err != nil {
		return Zone{}, nil, err
	}
	z := Zone{ID: trimZoneID(aws.ToString(out.HostedZone.Id)), Name: aws.ToString(out.HostedZone.Name)}
	if c := out.HostedZone.Config; c != nil {
		z.Private = c.PrivateZone
	}
	var vpcs []string
	for _, v := range out.VPCs {
		vpcs = append(vpcs, aws.ToString(v.VPCId))
	}
	return z, vpcs, nil
}

func zonesOfVPC(ctx context.Context, r awsx.Route53API, vpc, region string) ([]Zone, error) {
	var out []Zone
	in := &route53.ListHostedZonesByVPCInput{VPCId: aws.String(vpc), VPCRegion: r53types.VPCRegion(region)}
	for {
		page, err := r.ListHostedZonesByVPC(ctx, in)
		if err != nil {
			return nil, awsx.Explain("route53:ListHostedZonesByVPC", err)
		}
		for _, s := range page.HostedZoneSummaries {
			out = append(out, Zone{ID: trimZoneID(aws.ToString(s.HostedZoneId)), Name: aws.ToString(s.Name), Private: true,
				FoundBy: "private zone associated with VPC " + vpc})
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

// zonesByTags finds the private zones carrying every tag (the OpenShift
// ingress operator finds the private zone the same way).
func zonesByTags(ctx context.Context, r awsx.Route53API, want map[string]string) ([]Zone, error) {
	var private []Zone
	p := route53.NewListHostedZonesPaginator(r, &route53.ListHostedZonesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsx.Explain("route53:ListHostedZones", err)
		}
		for _, z := range page.HostedZones {
			if z.Config != nil && z.Config.PrivateZone {
				private = append(private, Zone{ID: trimZoneID(aws.ToString(z.Id)), Name: aws.ToString(z.Name), Private: true})
			}
		}
	}
	var out []Zone
	for start := 0; start < len(private); start += 10 { // ListTagsForResources takes up to 10
		batch := private[start:min(start+10, len(private))]
		ids := make([]string, len(batch))
		for i, z := range batch {
			ids[i] = z.ID
		}
		res, err := r.ListTagsForResources(ctx, &route53.ListTagsForResourcesInput{ResourceType: r53types.TagResourceTypeHostedzone, ResourceIds: ids})
		if err != nil {
			return nil, awsx.Explain("route53:ListTagsForResources", err)
		}
		for _, s := range res.ResourceTagSets {
			have := map[string]string{}
			for _, t := range s.Tags {
				have[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			match := true
			for k, v := range want {
				if have[k] != v {
					match = false
				}
			}
			if match {
				for _, z := range batch {
					if z.ID == trimZoneID(aws.ToString(s.ResourceId)) {
						out = append(out, z)
					}
				}
			}
		}
	}
	return out, nil
}

// NormalizeDNSName makes a load balancer name and an alias target
// comparable: lower case, no trailing dot, no "dualstack." prefix (the
// form AWS recommends for ALB and Classic aliases).
func NormalizeDNSName(s string) string {
	s = strings.TrimSuffix(strings.ToLower(unescape(s)), ".")
	return strings.TrimPrefix(s, "dualstack.")
}

// unescape turns Route 53's octal escapes (\052 for *) back into characters.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Targets are the load balancers of the inventory by normalized DNS name,
// with whether each is dual-stack now or becomes so with plan (nil: none).
func Targets(inv *awsx.Inventory, plan *awsx.Plan) map[string]Target {
	planned := map[string]bool{}
	if plan != nil {
		for _, c := range plan.Changes {
			if c.Operation == "SetIpAddressType" && c.Parameters["ipAddressType"] == "dualstack" {
				planned[c.Resource] = true
			}
		}
	}
	out := map[string]Target{}
	for _, lb := range inv.LoadBalancers {
		out[NormalizeDNSName(lb.DNSName)] = Target{LoadBalancer: lb.Name, Type: lb.Type, Service: lb.Service,
			DualStack: lb.IPAddressType == "dualstack" || lb.IPAddressType == "dualstack-without-public-ipv4", Planned: planned[lb.Name]}
	}
	return out
}

// recordKey is a record set's identity in a zone: name, type, set identifier.
func recordKey(name string, typ r53types.RRType, set string) string {
	return NormalizeDNSName(name) + "|" + string(typ) + "|" + set
}

// ListRecords reads every record set of a zone, page by page.
func ListRecords(ctx context.Context, r awsx.Route53API, zoneID string) ([]r53types.ResourceRecordSet, error) {
	var out []r53types.ResourceRecordSet
	p := route53.NewListResourceRecordSetsPaginator(r, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), MaxItems: aws.Int32(300)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsx.Explain("route53:ListResourceRecordSets", err)
		}
		out = append(out, page.ResourceRecordSets...)
	}
	return out, nil
}

// maxNamed caps how many names a note lists.
const maxNamed = 5

// MakePlan reads the zones' records and plans the AAAA twin of every alias
// A record whose target is dual-stack (now or by the conversion). command
// is how the user runs the plugin, for the notes' fixes.
func MakePlan(ctx context.Context, r awsx.Route53API, zones []Zone, targets map[string]Target, command string) (*Plan, error) {
	p := &Plan{Zones: zones, Changes: []Change{}, Notes: []awsx.Note{}}
	for _, z := range zones {
		records, err := ListRecords(ctx, r, z.ID)
		if err != nil {
			return nil, err
		}
		p.Counts.Records += len(records)
		have := map[string]r53types.ResourceRecordSet{}
		for _, rs := range records {
			have[recordKey(aws.ToString(rs.Name), rs.Type, aws.ToString(rs.SetIdentifier))] = rs
		}
		var plain, classic, stay []string
		for _, rs := range records {
			if rs.Type != r53types.RRTypeA {
				continue
			}
			name := unescape(aws.ToString(rs.Name))
			set := aws.ToString(rs.SetIdentifier)
			twin, hasTwin := have[recordKey(name, r53types.RRTypeAaaa, set)]
			if rs.AliasTarget == nil {
				p.Counts.PlainA++
				if !hasTwin {
					plain = append(plain, name)
				}
				continue
			}
			p.Counts.AliasA++
			dest := NormalizeDNSName(aws.ToString(rs.AliasTarget.DNSName))
			t, ok := targets[dest]
			if !ok {
				p.Counts.OtherAlias++
				continue // not one of the cluster's load balancers
			}
			owner := ""
			if t.Service != "" {
				owner = " (Service " + t.Service + ")"
			}
			switch {
			case hasTwin && twin.AliasTarget != nil && NormalizeDNSName(aws.ToString(twin.AliasTarget.DNSName)) == dest:
				p.Counts.WithAAAA++
			case hasTwin:
				p.Notes = append(p.Notes, awsx.Note{Resource: name,
					Message: fmt.Sprintf("%s in zone %s has an AAAA record that does not point at %s%s: left alone", name, z.Name, t.LoadBalancer, owner)})
			case t.Type == "classic":
				classic = append(classic, fmt.Sprintf("%s -> %s%s", name, t.LoadBalancer, owner))
			case !t.DualStack && !t.Planned:
				stay = append(stay, fmt.Sprintf("%s -> %s%s", name, t.LoadBalancer, owner))
			default:
				aaaa := rs
				aaaa.Type = r53types.RRTypeAaaa
				aaaa.Name = aws.String(name)
				aaaa.ResourceRecords = nil
				aaaa.TTL = nil
				when := "is dual-stack"
				if !t.DualStack {
					when = "becomes dual-stack with the aws phase"
				}
				c := Change{ZoneID: z.ID, ZoneName: z.Name, Name: name, SetIdentifier: set, AliasTarget: aws.ToString(rs.AliasTarget.DNSName),
					LoadBalancer: t.LoadBalancer, Record: aaaa,
					Reason: fmt.Sprintf("alias A %s -> %s %s%s, which %s: AAAA alias twin with the same target%s", name, lbKind(t.Type), t.LoadBalancer, owner, when, routing(rs))}
				c.ID = "dns/" + z.ID + "/" + name + "/AAAA"
				if set != "" {
					c.ID += "/" + set
				}
				p.Changes = append(p.Changes, c)
			}
		}
		if len(classic) > 0 {
			p.Notes = append(p.Notes, awsx.Note{Resource: z.Name,
				Message: fmt.Sprintf("%d alias record(s) in zone %s point at a Classic ELB, which has no IPv6: %s", len(classic), z.Name, few(classic)),
				Fix:     "move the Service to a dual-stack NLB (`" + command + " gateway`; OpenShift's router: the IngressController's NLB type), then re-run the dns phase"})
		}
		if len(stay) > 0 {
			p.Notes = append(p.Notes, awsx.Note{Resource: z.Name,
				Message: fmt.Sprintf("%d alias record(s) in zone %s point at a load balancer that stays IPv4 (see the aws plan's notes): %s", len(stay), z.Name, few(stay))})
		}
		if len(plain) > 0 {
			p.Notes = append(p.Notes, awsx.Note{Resource: z.Name,
				Message: fmt.Sprintf("%d plain A record(s) in zone %s have no AAAA, and none is invented: %s", len(plain), z.Name, few(plain)),
				Fix:     "add an AAAA record by hand where the host has an IPv6 address"})
		}
	}
	return p, nil
}

func few(list []string) string {
	if len(list) > maxNamed {
		return strings.Join(list[:maxNamed], ", ") + fmt.Sprintf(" and %d more", len(list)-maxNamed)
	}
	return strings.Join(list, ", ")
}

func routing(rs r53types.ResourceRecordSet) string {
	var parts []string
	if s := aws.ToString(rs.SetIdentifier); s != "" {
		parts = append(parts, "set identifier "+s)
	}
	if rs.Weight != nil {
		parts = append(parts, "weight "+strconv.FormatInt(*rs.Weight, 10))
	}
	if rs.Region != "" {
		parts = append(parts, "region "+string(rs.Region))
	}
	if rs.Failover != "" {
		parts = append(parts, "failover "+string(rs.Failover))
	}
	if rs.GeoLocation != nil {
		parts = append(parts, "geolocation")
	}
	if rs.MultiValueAnswer != nil {
		parts = append(parts, "multivalue")
	}
	if h := aws.ToString(rs.HealthCheckId); h != "" {
		parts = append(parts, "health check "+h)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (and its " + strings.Join(parts, ", ") + ")"
}

func lbKind(t string) string {
	switch t {
	case "network":
		return "NLB"
	case "application":
		return "ALB"
	case "classic":
		return "Classic ELB"
	}
	return t
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// recordJSON is how a record set is kept in the journal.
func recordJSON(rs r53types.ResourceRecordSet) string {
	b, _ := json.Marshal(rs)
	return string(b)
}

func recordFromJSON(s string) (r53types.ResourceRecordSet, error) {
	var rs r53types.ResourceRecordSet
	err := json.Unmarshal([]byte(s), &rs)
	return rs, err
}
