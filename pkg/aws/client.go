// Package aws is the AWS underlay of a dual-stack cluster: it finds the
// cluster's VPC and what belongs to it (discover), computes the changes that
// give it IPv6 (plan), makes them with a journal (apply) and takes exactly
// those back (rollback), and says which IAM actions all of that needs.
//
// It talks to AWS through narrow interfaces over the aws-sdk-go-v2 clients,
// so the logic is testable with fakes; the end-to-end tests run it against
// moto.
package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"
)

// EC2API is the part of the EC2 API the underlay uses. *ec2.Client has it.
type EC2API interface {
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeRouteTables(context.Context, *ec2.DescribeRouteTablesInput, ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	DescribeInternetGateways(context.Context, *ec2.DescribeInternetGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeInternetGatewaysOutput, error)
	DescribeEgressOnlyInternetGateways(context.Context, *ec2.DescribeEgressOnlyInternetGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeEgressOnlyInternetGatewaysOutput, error)
	DescribeNatGateways(context.Context, *ec2.DescribeNatGatewaysInput, ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeNetworkInterfaces(context.Context, *ec2.DescribeNetworkInterfacesInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeNetworkAcls(context.Context, *ec2.DescribeNetworkAclsInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkAclsOutput, error)

	AssociateVpcCidrBlock(context.Context, *ec2.AssociateVpcCidrBlockInput, ...func(*ec2.Options)) (*ec2.AssociateVpcCidrBlockOutput, error)
	DisassociateVpcCidrBlock(context.Context, *ec2.DisassociateVpcCidrBlockInput, ...func(*ec2.Options)) (*ec2.DisassociateVpcCidrBlockOutput, error)
	AssociateSubnetCidrBlock(context.Context, *ec2.AssociateSubnetCidrBlockInput, ...func(*ec2.Options)) (*ec2.AssociateSubnetCidrBlockOutput, error)
	DisassociateSubnetCidrBlock(context.Context, *ec2.DisassociateSubnetCidrBlockInput, ...func(*ec2.Options)) (*ec2.DisassociateSubnetCidrBlockOutput, error)
	ModifySubnetAttribute(context.Context, *ec2.ModifySubnetAttributeInput, ...func(*ec2.Options)) (*ec2.ModifySubnetAttributeOutput, error)
	CreateEgressOnlyInternetGateway(context.Context, *ec2.CreateEgressOnlyInternetGatewayInput, ...func(*ec2.Options)) (*ec2.CreateEgressOnlyInternetGatewayOutput, error)
	DeleteEgressOnlyInternetGateway(context.Context, *ec2.DeleteEgressOnlyInternetGatewayInput, ...func(*ec2.Options)) (*ec2.DeleteEgressOnlyInternetGatewayOutput, error)
	CreateRoute(context.Context, *ec2.CreateRouteInput, ...func(*ec2.Options)) (*ec2.CreateRouteOutput, error)
	DeleteRoute(context.Context, *ec2.DeleteRouteInput, ...func(*ec2.Options)) (*ec2.DeleteRouteOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	AuthorizeSecurityGroupEgress(context.Context, *ec2.AuthorizeSecurityGroupEgressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error)
	RevokeSecurityGroupIngress(context.Context, *ec2.RevokeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error)
	RevokeSecurityGroupEgress(context.Context, *ec2.RevokeSecurityGroupEgressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error)
	AssignIpv6Addresses(context.Context, *ec2.AssignIpv6AddressesInput, ...func(*ec2.Options)) (*ec2.AssignIpv6AddressesOutput, error)
	UnassignIpv6Addresses(context.Context, *ec2.UnassignIpv6AddressesInput, ...func(*ec2.Options)) (*ec2.UnassignIpv6AddressesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	ModifyInstanceAttribute(context.Context, *ec2.ModifyInstanceAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error)
	CreateNetworkAclEntry(context.Context, *ec2.CreateNetworkAclEntryInput, ...func(*ec2.Options)) (*ec2.CreateNetworkAclEntryOutput, error)
	DeleteNetworkAclEntry(context.Context, *ec2.DeleteNetworkAclEntryInput, ...func(*ec2.Options)) (*ec2.DeleteNetworkAclEntryOutput, error)
}

// ELBv2API is the part of Elastic Load Balancing v2 (NLB, ALB) used here.
type ELBv2API interface {
	DescribeLoadBalancers(context.Context, *elbv2.DescribeLoadBalancersInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeTags(context.Context, *elbv2.DescribeTagsInput, ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error)
	SetIpAddressType(context.Context, *elbv2.SetIpAddressTypeInput, ...func(*elbv2.Options)) (*elbv2.SetIpAddressTypeOutput, error)
}

// ELBAPI is the part of Classic Elastic Load Balancing used here (read only).
type ELBAPI interface {
	DescribeLoadBalancers(context.Context, *elb.DescribeLoadBalancersInput, ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	DescribeTags(context.Context, *elb.DescribeTagsInput, ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
}

// Route53API is the part of Route 53 the dns phase uses (pkg/dns).
// *route53.Client has it.
type Route53API interface {
	GetHostedZone(context.Context, *route53.GetHostedZoneInput, ...func(*route53.Options)) (*route53.GetHostedZoneOutput, error)
	ListHostedZones(context.Context, *route53.ListHostedZonesInput, ...func(*route53.Options)) (*route53.ListHostedZonesOutput, error)
	ListHostedZonesByVPC(context.Context, *route53.ListHostedZonesByVPCInput, ...func(*route53.Options)) (*route53.ListHostedZonesByVPCOutput, error)
	ListTagsForResources(context.Context, *route53.ListTagsForResourcesInput, ...func(*route53.Options)) (*route53.ListTagsForResourcesOutput, error)
	ListResourceRecordSets(context.Context, *route53.ListResourceRecordSetsInput, ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	ChangeResourceRecordSets(context.Context, *route53.ChangeResourceRecordSetsInput, ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error)
	GetChange(context.Context, *route53.GetChangeInput, ...func(*route53.Options)) (*route53.GetChangeOutput, error)
}

// Clients are the AWS clients of one region.
type Clients struct {
	Region string
	EC2    EC2API
	ELBv2  ELBv2API
	ELB    ELBAPI
	// Route53 is global (its endpoint is in us-east-1).
	Route53 Route53API
	// Pacer paces the clients' calls per API (nil: not paced, as in tests
	// with fakes).
	Pacer *Pacer
}

// ConfigOptions say where AWS is: the flags first, then what the cluster
// records, then the SDK's default chain (environment, profiles, SSO, IMDS).
type ConfigOptions struct {
	Region  string
	Profile string
	// ServiceEndpoints are the Infrastructure's custom endpoints by service
	// name (ec2, elasticloadbalancing). An endpoint the user set for this
	// shell (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, a profile's
	// endpoint_url) wins over them: it is the more explicit choice.
	ServiceEndpoints map[string]string
	// MaxAttempts bounds the SDK's retries (throttling, 5xx); 0 is the SDK default.
	MaxAttempts int
	// MaxRPS, if > 0, is each API's calls a second instead of AWS's
	// documented rate: below it, leaving the rest of the account's buckets
	// to other tools; above it, for limits AWS raised on request.
	MaxRPS float64
}

// NewClients loads the SDK configuration and builds the clients.
func NewClients(ctx context.Context, o ConfigOptions) (*Clients, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	// The standard retryer retries throttling (RequestLimitExceeded) and 5xx
	// with backoff; a few more attempts than its default of 3 ride out bursts.
	maxAttempts := o.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = 6
	}
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = maxAttempts })
	}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration (profile %q): %w; check AWS_PROFILE, --aws-profile and ~/.aws/config", o.Profile, err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: the cluster does not record one; pass --region or set AWS_REGION")
	}
	// Every call waits for its API's token: bursts stay within AWS's
	// buckets instead of drawing throttling errors until retries run out.
	pacer := NewPacer(o.MaxRPS, nil)
	cfg.APIOptions = append(cfg.APIOptions, pacer.Middleware)
	endpoint := func(service, envSuffix string) *string {
		if cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_"+envSuffix) != "" {
			return nil // the SDK resolves the user's own endpoint
		}
		if u := o.ServiceEndpoints[service]; u != "" {
			return aws.String(u)
		}
		return nil
	}
	c := &Clients{Region: cfg.Region, Pacer: pacer}
	c.EC2 = ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
		if u := endpoint("ec2", "EC2"); u != nil {
			eo.BaseEndpoint = u
		}
	})
	c.ELBv2 = elbv2.NewFromConfig(cfg, func(eo *elbv2.Options) {
		if u := endpoint("elasticloadbalancing", "ELASTIC_LOAD_BALANCING_V2"); u != nil {
			eo.BaseEndpoint = u
		}
	})
	c.ELB = elb.NewFromConfig(cfg, func(eo *elb.Options) {
		if u := endpoint("elasticloadbalancing", "ELASTIC_LOAD_BALANCING"); u != nil {
			eo.BaseEndpoint = u
		}
	})
	c.Route53 = route53.NewFromConfig(cfg, func(ro *route53.Options) {
		if u := endpoint("route53", "ROUTE_53"); u != nil {
			ro.BaseEndpoint = u
		}
	})
	return c, nil
}

// Explain turns an AWS error from operation op into one sentence that names
// the operation and says what to do.
func Explain(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("AWS %s: %w", op, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		msg := api.ErrorMessage()
		switch {
		case code == "AuthFailure" || code == "UnrecognizedClientException" || code == "InvalidClientTokenId" ||
			code == "SignatureDoesNotMatch" || code == "ExpiredToken" || code == "InvalidAccessKeyId":
			return fmt.Errorf("AWS %s: the credentials were rejected (%s: %s); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --aws-profile, or log in again (aws sso login)", op, code, msg)
		case code == "AccessDenied" || code == "UnauthorizedOperation" || code == "AccessDeniedException":
			return fmt.Errorf("AWS %s: access denied (%s); grant the action %s to these credentials (the plugin's `aws iam-policy` command prints the whole policy)", op, code, IAMAction(op))
		case code == "RequestLimitExceeded" || code == "Throttling" || code == "ThrottlingException":
			return fmt.Errorf("AWS %s: still throttled after the SDK's retries (%s); wait a minute and re-run, it resumes where it stopped", op, code)
		case strings.HasPrefix(code, "InvalidVpcID") || code == "InvalidVpcID.NotFound":
			return fmt.Errorf("AWS %s: %s (%s); check --vpc-id and --region", op, msg, code)
		case code == "OptInRequired" || code == "UnrecognizedRegion" || code == "InvalidRegion":
			return fmt.Errorf("AWS %s: %s (%s); check --region", op, msg, code)
		}
		return fmt.Errorf("AWS %s: %s: %s", op, code, msg)
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return fmt.Errorf("AWS %s: the service kept failing (HTTP %d) after the SDK's retries; try again later: %w", op, re.HTTPStatusCode(), err)
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "failed to retrieve credentials") || strings.Contains(s, "no EC2 IMDS role") || strings.Contains(s, "get credentials"):
		return fmt.Errorf("AWS %s: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or --aws-profile)", op)
	case strings.Contains(s, "no such host") || strings.Contains(s, "connection refused") || strings.Contains(s, "dial tcp"):
		return fmt.Errorf("AWS %s: cannot reach the AWS endpoint (%v); check --region, AWS_ENDPOINT_URL and the network", op, err)
	}
	return fmt.Errorf("AWS %s: %w", op, err)
}

// ErrorCode is the AWS error code of err, or "".
func ErrorCode(err error) string { return errorCode(err) }

// errorCode is the AWS error code of err, or "".
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
