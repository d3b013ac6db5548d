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

// MaxBatch is the most changes one ChangeResourceRecordSets carries: Route
// 53 takes up to 1,000 elements a request (alias records carry no values,
// so the 32,000-character limit of values never binds here).
const MaxBatch = 1000

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Journal awsx.Journal
	// WaitTimeout bounds the wait for each batch to be INSYNC on Route
	// 53's name servers (default 5 minutes).
	WaitTimeout time.Duration
	// Progress, if set, is told after each batch.
	Progress func(done, total int)
}

// Apply creates the plan's AAAA records, one change batch per zone (split
// at MaxBatch), each recorded as pending before and done after, and waits
// until Route 53 says each batch is in sync. A batch is atomic: when Route
// 53 refuses it (a record created by someone else since the plan), none of
// its records exist and the entries say so; the apply stops there.
func Apply(ctx context.Context, r awsx.Route53API, p *Plan, o ApplyOptions) ([]awsx.Result, error) {
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Minute
	}
	results := make([]awsx.Result, 0, len(p.Changes))
	done := 0
	for _, batch := range batches(p.Changes, func(c Change) string { return c.ZoneID }) {
		entries := make([]journal.Entry, len(batch))
		changes := make([]r53types.Change, len(batch))
		for i, c := range batch {
			entries[i] = journal.Entry{ID: c.ID, Layer: Layer, Operation: "CreateAAAA", Resource: c.Name, State: journal.Pending,
				Undo: map[string]string{"zoneId": c.ZoneID, "zoneName": c.ZoneName, "record": recordJSON(c.Record)}}
			rec := c.Record
			changes[i] = r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &rec}
		}
		if err := o.Journal.PutAll(ctx, entries); err != nil {
			return results, fmt.Errorf("recording %d AAAA records of zone %s before creating them: %w; nothing was created in it", len(batch), batch[0].ZoneName, err)
		}
		out, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(batch[0].ZoneID),
			ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("kubectl-dualstack: AAAA twins of alias A records"), Changes: changes}})
		if err != nil {
			state := journal.Failed
			if awsx.ErrorCode(err) == "" {
				state = journal.Pending // no answer: it may have happened; rollback checks
			}
			for i := range entries {
				entries[i].State = state
			}
			_ = o.Journal.PutAll(context.WithoutCancel(ctx), entries)
			for _, c := range batch {
				results = append(results, result(c, awsx.StatusFailed, ""))
			}
			return results, fmt.Errorf("%d of %d AAAA records created; zone %s refused a batch of %d (none of it was made): %w; re-run to plan from the current records, or roll back",
				done, len(p.Changes), batch[0].ZoneName, len(batch), awsx.Explain("route53:ChangeResourceRecordSets", err))
		}
		for i := range entries {
			entries[i].State = journal.Done
			entries[i].Undo["changeId"] = aws.ToString(out.ChangeInfo.Id)
		}
		if err := o.Journal.PutAll(context.WithoutCancel(ctx), entries); err != nil {
			return results, fmt.Errorf("%d AAAA records of zone %s were created but not recorded as done (they are recorded as pending, so rollback still finds them): %w", len(batch), batch[0].ZoneName, err)
		}
		if err := route53.NewResourceRecordSetsChangedWaiter(r).Wait(ctx, &route53.GetChangeInput{Id: out.ChangeInfo.Id}, o.WaitTimeout); err != nil {
			return results, fmt.Errorf("the AAAA records of zone %s were created (change %s) but Route 53 did not report them in sync within %s: %w",
				batch[0].ZoneName, aws.ToString(out.ChangeInfo.Id), o.WaitTimeout, awsx.Explain("route53:GetChange", err))
		}
		for _, c := range batch {
			results = append(results, result(c, awsx.StatusApplied, ""))
		}
		done += len(batch)
		if o.Progress != nil {
			o.Progress(done, len(p.Changes))
		}
	}
	return results, nil
}

func result(c Change, status, errText string) awsx.Result {
	return awsx.Result{Operation: "CreateAAAA", Resource: c.Name, Reason: c.Reason, Status: status, Error: errText,
		Parameters: map[string]string{"zone": c.ZoneName, "aliasTarget": c.AliasTarget}}
}

// batches splits items per zone (in plan order) and at MaxBatch: one
// ChangeResourceRecordSets call each.
func batches[T any](items []T, zone func(T) string) [][]T {
	var out [][]T
	idx := map[string]int{}
	for _, c := range items {
		i, ok := idx[zone(c)]
		if !ok || len(out[i]) == MaxBatch {
			idx[zone(c)] = len(out)
			out = append(out, nil)
			i = len(out) - 1
		}
		out[i] = append(out[i], c)
	}
	return out
}

// Rollback deletes exactly the AAAA records the journal says the dns
// phase created, and marks their entries undone: only while a record is
// still the one created (one changed by someone since is left alone and
// said so); a record that is gone already is done. One delete batch per
// zone.
func Rollback(ctx context.Context, r awsx.Route53API, j awsx.Journal) ([]awsx.Result, error) {
	jn, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	byZone := map[string][]journal.Entry{}
	var zones []string
	for _, e := range jn.Layer(Layer) {
		if e.State == journal.Undone || e.State == journal.Failed {
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
		entries := byZone[z]
		live, err := ListRecords(ctx, r, z)
		if err != nil {
			if awsx.ErrorCode(err) == "NoSuchHostedZone" || strings.Contains(err.Error(), "NoSuchHostedZone") {
				live = nil // the zone is gone, and its records with it
			} else {
				failed = append(failed, err.Error())
				continue
			}
		}
		have := map[string]r53types.ResourceRecordSet{}
		for _, rs := range live {
			have[recordKey(aws.ToString(rs.Name), rs.Type, aws.ToString(rs.SetIdentifier))] = rs
		}
		var del []r53types.Change
		var delEntries, marks []journal.Entry
		for _, e := range entries {
			rec, err := recordFromJSON(e.Undo["record"])
			if err != nil {
				failed = append(failed, fmt.Sprintf("the journal's record of %s is unreadable: %v", e.Resource, err))
				continue
			}
			cur, ok := have[recordKey(aws.ToString(rec.Name), rec.Type, aws.ToString(rec.SetIdentifier))]
			res := awsx.Result{Operation: "DeleteAAAA", Resource: e.Resource, Parameters: map[string]string{"zone": e.Undo["zoneName"]}, Status: awsx.StatusUndone}
			e.State = journal.Undone
			switch {
			case !ok:
				marks = append(marks, e)
				results = append(results, res)
			case !sameAlias(cur, rec):
				res.Error = "changed by someone since it was created: left alone"
				marks = append(marks, e)
				results = append(results, res)
			default:
				del = append(del, r53types.Change{Action: r53types.ChangeActionDelete, ResourceRecordSet: &cur})
				delEntries = append(delEntries, e)
			}
		}
		for start := 0; start < len(del); start += MaxBatch {
			end := min(start+MaxBatch, len(del))
			if _, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(z),
				ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("kubectl-dualstack rollback"), Changes: del[start:end]}}); err != nil {
				failed = append(failed, awsx.Explain("route53:ChangeResourceRecordSets", err).Error())
				for _, e := range delEntries[start:end] {
					results = append(results, awsx.Result{Operation: "DeleteAAAA", Resource: e.Resource, Status: awsx.StatusFailed, Error: err.Error()})
				}
				continue
			}
			for _, e := range delEntries[start:end] {
				marks = append(marks, e)
				results = append(results, awsx.Result{Operation: "DeleteAAAA", Resource: e.Resource, Parameters: map[string]string{"zone": e.Undo["zoneName"]}, Status: awsx.StatusUndone})
			}
		}
		if len(marks) > 0 {
			if err := j.PutAll(context.WithoutCancel(ctx), marks); err != nil {
				failed = append(failed, "deleted, but not recorded as undone (the next rollback checks again): "+err.Error())
			}
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("dns rollback: %s; fix that and re-run rollback, it continues from there", strings.Join(failed, "; "))
	}
	return results, nil
}

// sameAlias says whether a live record is the one created: the same
// name, type, alias target and routing settings (what Route 53 echoes
// back differs in empty fields, so those are what is compared).
func sameAlias(live, made r53types.ResourceRecordSet) bool {
	key := func(rs r53types.ResourceRecordSet) string {
		target := ""
		if t := rs.AliasTarget; t != nil {
			target = NormalizeDNSName(aws.ToString(t.DNSName)) + "|" + trimZoneID(aws.ToString(t.HostedZoneId)) + "|" + fmt.Sprint(t.EvaluateTargetHealth)
		}
		geo := ""
		if g := rs.GeoLocation; g != nil {
			geo = aws.ToString(g.ContinentCode) + "/" + aws.ToString(g.CountryCode) + "/" + aws.ToString(g.SubdivisionCode)
		}
		return strings.Join([]string{NormalizeDNSName(aws.ToString(rs.Name)), string(rs.Type), aws.ToString(rs.SetIdentifier), target,
			fmt.Sprint(aws.ToInt64(rs.Weight)), string(rs.Region), string(rs.Failover), geo, fmt.Sprint(aws.ToBool(rs.MultiValueAnswer)),
			aws.ToString(rs.HealthCheckId)}, "|")
	}
	return key(live) == key(made)
}
