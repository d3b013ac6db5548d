package dns

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// MoveLayer is the journal layer of the alias records a gateway migration
// moves from the old load balancer to the new one. It is not Layer: the dns
// phase's rollback deletes what it created, a move's rollback puts back
// what was there.
const MoveLayer = "dns-move"

// Journal operations of MoveLayer.
const (
	OpMoveAlias = "MoveAlias" // an alias record's target changed (UPSERT)
	OpAddTwin   = "AddAAAA"   // the AAAA twin of a moved A record, new
)

// LBTarget is a load balancer as an alias record names it.
type LBTarget struct {
	DNSName      string
	HostedZoneID string // its canonical hosted zone
}

// Move is one alias record to point at the new load balancer. Field names
// are stable (-o json).
type Move struct {
	ID            string `json:"id"`
	Operation     string `json:"operation"` // MoveAlias, AddAAAA
	ZoneID        string `json:"zoneId"`
	ZoneName      string `json:"zoneName"`
	Name          string `json:"name"`
	Type          string `json:"type"` // A, AAAA
	SetIdentifier string `json:"setIdentifier,omitempty"`
	From          string `json:"from,omitempty"` // "" for a new AAAA twin
	To            string `json:"to"`
	// Previous is the record set as it is (nil: there is none); Record is
	// what the UPSERT writes.
	Previous *r53types.ResourceRecordSet `json:"-"`
	Record   r53types.ResourceRecordSet  `json:"-"`
}

// MovePlan is what moving the names does.
type MovePlan struct {
	Moves []Move `json:"moves"`
	// Notes are records that point at the old load balancer and are left
	// alone, with why.
	Notes []string `json:"notes,omitempty"`
}

// PlanMoves reads the zones' records and plans, for every alias A or AAAA
// record whose target is the load balancer from, the same record pointing
// at to; an alias A record without an AAAA twin gets one (to is dual-stack).
// Routing settings (set identifier, weight, failover, health check) and
// EvaluateTargetHealth stay as they are.
//
// A record external-dns owns (its TXT registry record says
// heritage=external-dns) moves only when the resource that owns it is
// resource (the old gateway Service, "service/<ns>/<name>", whose
// external-dns annotations move with the names); one another source owns
// would be moved back by external-dns, so it is left alone with a note.
func PlanMoves(ctx context.Context, r awsx.Route53API, zones []Zone, from string, to LBTarget, resource string) (*MovePlan, error) {
	if to.DNSName == "" || to.HostedZoneID == "" {
		return nil, fmt.Errorf("internal error: the new load balancer's DNS name and hosted zone must be known to move records to it")
	}
	old := NormalizeDNSName(from)
	if old == "" {
		return nil, fmt.Errorf("internal error: no old load balancer name to move records from")
	}
	p := &MovePlan{Moves: []Move{}}
	for _, z := range zones {
		records, err := ListRecords(ctx, r, z.ID)
		if err != nil {
			return nil, err
		}
		have := map[string]r53types.ResourceRecordSet{}
		for _, rs := range records {
			have[recordKey(aws.ToString(rs.Name), rs.Type, aws.ToString(rs.SetIdentifier))] = rs
		}
		owners := externalDNSOwners(records)
		for _, rs := range records {
			if rs.AliasTarget == nil || (rs.Type != r53types.RRTypeA && rs.Type != r53types.RRTypeAaaa) {
				continue
			}
			if NormalizeDNSName(aws.ToString(rs.AliasTarget.DNSName)) != old {
				continue
			}
			name := unescape(aws.ToString(rs.Name))
			set := aws.ToString(rs.SetIdentifier)
			if owner, ok := owners[NormalizeDNSName(name)]; ok && owner != resource {
				if rs.Type == r53types.RRTypeA {
					p.Notes = append(p.Notes, fmt.Sprintf("%s in zone %s is external-dns's (owned by %s): left alone, external-dns would move it back; point that source at the new gateway instead", name, z.Name, ownerName(owner)))
				}
				continue
			}
			prev := rs
			p.Moves = append(p.Moves, move(z, OpMoveAlias, name, set, &prev, pointAt(rs, rs.Type, to)))
			if rs.Type != r53types.RRTypeA {
				continue
			}
			twin, ok := have[recordKey(name, r53types.RRTypeAaaa, set)]
			switch {
			case !ok:
				p.Moves = append(p.Moves, move(z, OpAddTwin, name, set, nil, pointAt(rs, r53types.RRTypeAaaa, to)))
			case twin.AliasTarget == nil || NormalizeDNSName(aws.ToString(twin.AliasTarget.DNSName)) != old &&
				NormalizeDNSName(aws.ToString(twin.AliasTarget.DNSName)) != NormalizeDNSName(to.DNSName):
				p.Notes = append(p.Notes, fmt.Sprintf("%s in zone %s has an AAAA record that points elsewhere: left alone", name, z.Name))
			}
			// An AAAA twin pointing at the old name is moved in its own turn.
		}
	}
	return p, nil
}

// pointAt is rs (its name as Route 53 lists it, escapes and all, so an
// UPSERT names the same record set) of type typ, aliased to to.
func pointAt(rs r53types.ResourceRecordSet, typ r53types.RRType, to LBTarget) r53types.ResourceRecordSet {
	out := rs
	out.Type = typ
	out.ResourceRecords, out.TTL = nil, nil
	out.AliasTarget = &r53types.AliasTarget{DNSName: aws.String(to.DNSName), HostedZoneId: aws.String(trimZoneID(to.HostedZoneID)),
		EvaluateTargetHealth: rs.AliasTarget.EvaluateTargetHealth}
	return out
}

func move(z Zone, op, name, set string, prev *r53types.ResourceRecordSet, rec r53types.ResourceRecordSet) Move {
	m := Move{Operation: op, ZoneID: z.ID, ZoneName: z.Name, Name: name, Type: string(rec.Type), SetIdentifier: set,
		To: aws.ToString(rec.AliasTarget.DNSName), Previous: prev, Record: rec}
	if prev != nil {
		m.From = aws.ToString(prev.AliasTarget.DNSName)
	}
	m.ID = MoveLayer + "/" + z.ID + "/" + name + "/" + m.Type
	if set != "" {
		m.ID += "/" + set
	}
	return m
}

// Describe is one line per move, for the plan.
func (p *MovePlan) Describe() string {
	var lines []string
	for _, m := range p.Moves {
		set := ""
		if m.SetIdentifier != "" {
			set = " (set " + m.SetIdentifier + ")"
		}
		if m.Operation == OpAddTwin {
			lines = append(lines, fmt.Sprintf("  zone %s: add %s alias %s%s -> %s", m.ZoneName, m.Type, m.Name, set, m.To))
		} else {
			lines = append(lines, fmt.Sprintf("  zone %s: %s alias %s%s: %s -> %s", m.ZoneName, m.Type, m.Name, set, m.From, m.To))
		}
	}
	for _, n := range p.Notes {
		lines = append(lines, "  note: "+n)
	}
	return strings.Join(lines, "\n")
}

// ManualMoves is what to change by hand when the names are not in Route 53
// (or not in a zone the plugin found): every record that resolves to the old
// load balancer's name.
func ManualMoves(from, to string) string {
	return fmt.Sprintf("Point every DNS record that leads to %s at %s instead:\n"+
		"  a CNAME: change its value to %s\n"+
		"  an alias (Route 53 or another provider's ALIAS/ANAME): change its target, and add the AAAA (IPv6) twin of each A alias\n"+
		"Both load balancers serve meanwhile; keep the old one until the old records' TTL has passed.",
		NormalizeDNSName(from), NormalizeDNSName(to), NormalizeDNSName(to))
}

// ApplyMoves writes the plan, one UPSERT batch per zone (split at
// MaxBatch), each recorded as pending before and done after, with the
// record as it was, and waits until Route 53 says each batch is in sync.
func ApplyMoves(ctx context.Context, r awsx.Route53API, p *MovePlan, o ApplyOptions) ([]awsx.Result, error) {
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Minute
	}
	results := make([]awsx.Result, 0, len(p.Moves))
	done := 0
	for _, batch := range batches(p.Moves, func(m Move) string { return m.ZoneID }) {
		entries := make([]journal.Entry, len(batch))
		changes := make([]r53types.Change, len(batch))
		for i, m := range batch {
			undo := map[string]string{"zoneId": m.ZoneID, "zoneName": m.ZoneName, "record": recordJSON(m.Record), "to": m.To}
			if m.Previous != nil {
				undo["previous"] = recordJSON(*m.Previous)
			}
			entries[i] = journal.Entry{ID: m.ID, Layer: MoveLayer, Operation: m.Operation, Resource: m.Name + " " + m.Type, State: journal.Pending, Undo: undo}
			rec := m.Record
			changes[i] = r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &rec}
		}
		zone := batch[0].ZoneName
		if err := o.Journal.PutAll(ctx, entries); err != nil {
			return results, fmt.Errorf("recording %d record moves of zone %s before making them: %w; %d of %d records moved before it", len(batch), zone, err, done, len(p.Moves))
		}
		out, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(batch[0].ZoneID),
			ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("kubectl-dualstack: move alias records to the dual-stack gateway"), Changes: changes}})
		if err != nil {
			state := journal.Failed
			if awsx.ErrorCode(err) == "" {
				state = journal.Pending // no answer: it may have happened; rollback checks
			}
			for i := range entries {
				entries[i].State = state
			}
			_ = o.Journal.PutAll(context.WithoutCancel(ctx), entries)
			for _, m := range batch {
				results = append(results, moveResult(m, awsx.StatusFailed, err.Error()))
			}
			return results, fmt.Errorf("%d of %d records moved; zone %s refused a batch of %d (none of it was made): %w; re-run to plan from the current records, or roll back",
				done, len(p.Moves), zone, len(batch), awsx.Explain("route53:ChangeResourceRecordSets", err))
		}
		for i := range entries {
			entries[i].State = journal.Done
			entries[i].Undo["changeId"] = aws.ToString(out.ChangeInfo.Id)
		}
		if err := o.Journal.PutAll(context.WithoutCancel(ctx), entries); err != nil {
			return results, fmt.Errorf("%d records of zone %s were moved but not recorded as done (they are recorded as pending, so rollback still finds them): %w", len(batch), zone, err)
		}
		if err := route53.NewResourceRecordSetsChangedWaiter(r).Wait(ctx, &route53.GetChangeInput{Id: out.ChangeInfo.Id}, o.WaitTimeout); err != nil {
			return results, fmt.Errorf("the records of zone %s were moved (change %s) but Route 53 did not report them in sync within %s: %w",
				zone, aws.ToString(out.ChangeInfo.Id), o.WaitTimeout, awsx.Explain("route53:GetChange", err))
		}
		for _, m := range batch {
			results = append(results, moveResult(m, awsx.StatusApplied, ""))
		}
		done += len(batch)
		if o.Progress != nil {
			o.Progress(done, len(p.Moves))
		}
	}
	return results, nil
}

func moveResult(m Move, status, errText string) awsx.Result {
	return awsx.Result{Operation: m.Operation, Resource: m.Name + " " + m.Type, Status: status, Error: errText,
		Parameters: map[string]string{"zone": m.ZoneName, "from": m.From, "to": m.To}}
}

// HasMoves says whether the journal holds record moves rollback would take back.
func HasMoves(j *journal.Journal) bool {
	for _, e := range j.Layer(MoveLayer) {
		if e.State == journal.Pending || e.State == journal.Done {
			return true
		}
	}
	return false
}

// RollbackMoves points the moved records back: a moved record is written
// as it was (UPSERT), a twin that did not exist is deleted; only while the
// record is still the one the move wrote (one changed by someone since is
// left alone and said so). One batch per zone; entries are marked undone.
//
// redirect maps an old load balancer's DNS name (NormalizeDNSName) to the
// name of the one that replaced it: a retired gateway Service created again
// gets a new Classic ELB, and the records go back to that one, not to the
// deleted one. The alias's hosted zone stays: a region's Classic ELBs share
// one canonical hosted zone.
func RollbackMoves(ctx context.Context, r awsx.Route53API, j awsx.Journal, redirect map[string]string) ([]awsx.Result, error) {
	jn, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	byZone := map[string][]journal.Entry{}
	var zones []string
	for _, e := range jn.Layer(MoveLayer) {
		if e.State != journal.Pending && e.State != journal.Done {
			continue
		}
		z := e.Undo["zoneId"]
		if _, ok := byZone[z]; !ok {
			zones = append(zones, z)
		}
		byZone[z] = append(byZone[z], e)
	}
	sort.Strings(zones)
	var results []awsx.Result
	var failed []string
	for _, z := range zones {
		live, err := ListRecords(ctx, r, z)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		have := map[string]r53types.ResourceRecordSet{}
		for _, rs := range live {
			have[recordKey(aws.ToString(rs.Name), rs.Type, aws.ToString(rs.SetIdentifier))] = rs
		}
		var changes []r53types.Change
		var changed, marks []journal.Entry
		for _, e := range byZone[z] {
			rec, err := recordFromJSON(e.Undo["record"])
			if err != nil {
				failed = append(failed, fmt.Sprintf("the journal's record of %s is unreadable: %v", e.Resource, err))
				continue
			}
			var prev *r53types.ResourceRecordSet
			if s := e.Undo["previous"]; s != "" {
				p, err := recordFromJSON(s)
				if err != nil {
					failed = append(failed, fmt.Sprintf("the journal's previous record of %s is unreadable: %v", e.Resource, err))
					continue
				}
				if t := p.AliasTarget; t != nil {
					if to, ok := redirect[NormalizeDNSName(aws.ToString(t.DNSName))]; ok {
						at := *t
						at.DNSName = aws.String(sameForm(aws.ToString(t.DNSName), to))
						p.AliasTarget = &at
					}
				}
				prev = &p
			}
			res := awsx.Result{Operation: "Undo" + e.Operation, Resource: e.Resource, Parameters: map[string]string{"zone": e.Undo["zoneName"]}, Status: awsx.StatusUndone}
			e.State = journal.Undone
			cur, ok := have[recordKey(aws.ToString(rec.Name), rec.Type, aws.ToString(rec.SetIdentifier))]
			switch {
			case ok && sameAlias(cur, rec) && prev != nil:
				p := *prev
				changes = append(changes, r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &p})
				changed = append(changed, e)
			case ok && sameAlias(cur, rec):
				c := cur
				changes = append(changes, r53types.Change{Action: r53types.ChangeActionDelete, ResourceRecordSet: &c})
				changed = append(changed, e)
			case !ok && prev == nil, ok && prev != nil && sameAlias(cur, *prev):
				marks = append(marks, e) // as it was already
				results = append(results, res)
			default:
				res.Error = "changed by someone since it was moved: left alone"
				marks = append(marks, e)
				results = append(results, res)
			}
		}
		for start := 0; start < len(changes); start += MaxBatch {
			end := min(start+MaxBatch, len(changes))
			if _, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(z),
				ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("kubectl-dualstack rollback: alias records back to the old gateway"), Changes: changes[start:end]}}); err != nil {
				failed = append(failed, awsx.Explain("route53:ChangeResourceRecordSets", err).Error())
				for _, e := range changed[start:end] {
					results = append(results, awsx.Result{Operation: "Undo" + e.Operation, Resource: e.Resource, Status: awsx.StatusFailed, Error: err.Error()})
				}
				continue
			}
			for _, e := range changed[start:end] {
				marks = append(marks, e)
				results = append(results, awsx.Result{Operation: "Undo" + e.Operation, Resource: e.Resource, Parameters: map[string]string{"zone": e.Undo["zoneName"]}, Status: awsx.StatusUndone})
			}
		}
		if len(marks) > 0 {
			if err := j.PutAll(context.WithoutCancel(ctx), marks); err != nil {
				failed = append(failed, "moved back, but not recorded as undone (the next rollback checks again): "+err.Error())
			}
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("rolling back the moved records: %s; fix that and re-run rollback, it continues from there", strings.Join(failed, "; "))
	}
	return results, nil
}

// sameForm is name written as was is: with its "dualstack." prefix and
// trailing dot, or without.
func sameForm(was, name string) string {
	name = NormalizeDNSName(name)
	if strings.HasPrefix(strings.ToLower(was), "dualstack.") {
		name = "dualstack." + name
	}
	if strings.HasSuffix(was, ".") {
		name += "."
	}
	return name
}

// externalDNSOwners reads external-dns's TXT registry among records: the
// name each ownership record covers -> the resource that owns it
// ("service/<ns>/<name>", "" when the record names none). external-dns
// writes the TXT record at the name itself (before v0.12) or at the name
// with its first label prefixed by the record type ("a-", "aaaa-",
// "cname-"); a custom --txt-prefix or --txt-suffix is not recognised.
func externalDNSOwners(records []r53types.ResourceRecordSet) map[string]string {
	out := map[string]string{}
	for _, rs := range records {
		if rs.Type != r53types.RRTypeTxt {
			continue
		}
		for _, v := range rs.ResourceRecords {
			val := strings.Trim(aws.ToString(v.Value), `"`)
			if !strings.Contains(val, "heritage=external-dns") {
				continue
			}
			resource := ""
			for _, kv := range strings.Split(val, ",") {
				if r, ok := strings.CutPrefix(kv, "external-dns/resource="); ok {
					resource = r
				}
			}
			name := NormalizeDNSName(aws.ToString(rs.Name))
			out[name] = resource
			for _, prefix := range []string{"a-", "aaaa-", "cname-"} {
				if rest, ok := strings.CutPrefix(name, prefix); ok {
					out[rest] = resource
				}
			}
		}
	}
	return out
}

func ownerName(s string) string {
	if s == "" {
		return "a source the TXT record does not name"
	}
	return s
}
