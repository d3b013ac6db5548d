package convert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// Target says which AWS account and VPC: the flags every AWS command shares.
type Target struct {
	Region, VPCID, InfraID, Profile string
	ForceVPC                        bool
	// MaxAWSRPS is each AWS API's calls a second (0: AWS's documented rates).
	MaxAWSRPS float64
}

// Account is the cluster's AWS account, resolved once through the cluster,
// with the last discovery of its network.
type Account struct {
	AWS    *awsx.Clients
	Target awsx.Target

	facts *Facts
	inv   *awsx.Inventory
	// Discoveries counts the calls to awsx.Discover, for tests and -v.
	Discoveries int
}

// ResolveAWS finds the cluster's AWS account from the facts (the
// Infrastructure object, else the nodes' providerIDs) and the flags, and
// builds the AWS clients; it makes no AWS call.
func ResolveAWS(ctx context.Context, f *Facts, t Target) (*Account, error) {
	info := f.Platform
	a := &Account{facts: f, Target: awsx.Target{VPCID: t.VPCID, InfraID: t.InfraID, ForceVPC: t.ForceVPC,
		Instances: awsx.NodeInstances(f.Nodes), NodeNames: awsx.NodeNames(f.Nodes)}}
	if !info.OnAWS() && t.VPCID == "" {
		return nil, fmt.Errorf("%w (%s); to work on a VPC anyway pass --vpc-id and --region (and --force-vpc unless it carries the --infra-id cluster tag)",
			awsx.ErrNotOnAWS, describeNotAWS(info))
	}
	region := t.Region
	switch {
	case region != "":
		a.Target.ResolvedBy = append(a.Target.ResolvedBy, "region from --region")
	case info.AWSRegion != "":
		region = info.AWSRegion
		a.Target.ResolvedBy = append(a.Target.ResolvedBy, "region from the cluster ("+strings.Join(info.Evidence, "; ")+")")
	}
	if a.Target.InfraID == "" && info.InfraID != "" {
		a.Target.InfraID = info.InfraID
		a.Target.ResolvedBy = append(a.Target.ResolvedBy, "infraID from infrastructures.config.openshift.io/cluster")
	} else if t.InfraID != "" {
		a.Target.ResolvedBy = append(a.Target.ResolvedBy, "infraID from --infra-id")
	}
	var err error
	a.AWS, err = awsx.NewClients(ctx, awsx.ConfigOptions{Region: region, Profile: t.Profile, ServiceEndpoints: info.EndpointMap(), MaxRPS: t.MaxAWSRPS})
	if err != nil {
		return nil, err
	}
	f.Account = a
	return a, nil
}

func describeNotAWS(info platform.Info) string {
	if info.Kind == platform.OpenShift {
		s := info.InfrastructurePlatform
		if s == "" {
			s = "not set"
		}
		return "the OpenShift Infrastructure platform is " + s
	}
	return "no node has an aws:///<zone>/<instance> providerID"
}

// Inventory is the last discovery of the cluster's AWS network, or a new
// one when there is none or it was invalidated.
func (a *Account) Inventory(ctx context.Context) (*awsx.Inventory, error) {
	if a.inv != nil {
		return a.inv, nil
	}
	return a.Refresh(ctx)
}

// Refresh discovers the cluster's AWS network again. A --vpc-id that is
// not the cluster's is bad input.
func (a *Account) Refresh(ctx context.Context) (*awsx.Inventory, error) {
	a.Discoveries++
	inv, err := awsx.Discover(ctx, a.AWS, a.Target)
	var foreign *awsx.ForeignVPCError
	if errors.As(err, &foreign) {
		return nil, &cli.UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	a.inv = inv
	return inv, nil
}

// Invalidate drops the last discovery: the network changed.
func (a *Account) Invalidate() { a.inv = nil }

// NodeReady waits for an instance's Node to be Ready (instance type changes).
func (a *Account) NodeReady() awsx.NodeReadyFunc {
	kc := a.facts.Clients.Kube
	return awsx.WaitNodeReady(func(ctx context.Context) ([]corev1.Node, error) {
		return kube.ListNodes(ctx, kc, metav1.ListOptions{})
	}, 2*time.Second)
}

// Kube is the cluster's clients.
func (a *Account) Kube() *kube.Clients { return a.facts.Clients }
