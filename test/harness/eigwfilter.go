package harness

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// filterEgressOnlyGateways applies to moto's DescribeEgressOnlyInternetGateways
// answer the filters real EC2 applies and moto ignores. The documented ones
// are tag:<key> (values of that tag) and tag-key (a tag with that key); a
// gateway stays when it matches every filter (any of a filter's values),
// as EC2 documents for Describe filters.
func filterEgressOnlyGateways(resp *http.Response) error {
	req := resp.Request
	if req == nil || req.Method != http.MethodPost || resp.StatusCode != http.StatusOK {
		return nil
	}
	params, ok := req.Context().Value(paramsKey{}).(url.Values)
	if !ok || params.Get("Action") != "DescribeEgressOnlyInternetGateways" {
		return nil
	}
	filters := map[string][]string{}
	for i := 1; ; i++ {
		name := params.Get("Filter." + strconv.Itoa(i) + ".Name")
		if name == "" {
			break
		}
		for j := 1; ; j++ {
			v, ok := params["Filter."+strconv.Itoa(i)+".Value."+strconv.Itoa(j)]
			if !ok {
				break
			}
			filters[name] = append(filters[name], v...)
		}
	}
	if len(filters) == 0 {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var doc struct {
		RequestID string `xml:"requestId"`
		Items     []struct {
			Inner string `xml:",innerxml"`
			Tags  []struct {
				Key   string `xml:"key"`
				Value string `xml:"value"`
			} `xml:"tagSet>item"`
		} `xml:"egressOnlyInternetGatewaySet>item"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("egress-only gateway filter: moto's answer: %w", err)
	}
	var out bytes.Buffer
	out.WriteString(`<?xml version="1.0" encoding="UTF-8"?><DescribeEgressOnlyInternetGatewaysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`)
	fmt.Fprintf(&out, "<requestId>%s</requestId><egressOnlyInternetGatewaySet>", doc.RequestID)
	for _, it := range doc.Items {
		keep := true
		for name, values := range filters {
			match := false
			for _, t := range it.Tags {
				switch {
				case name == "tag-key":
					match = match || contains(values, t.Key)
				case strings.HasPrefix(name, "tag:") && t.Key == strings.TrimPrefix(name, "tag:"):
					match = match || contains(values, t.Value)
				}
			}
			keep = keep && match
		}
		if keep {
			out.WriteString("<item>" + it.Inner + "</item>")
		}
	}
	out.WriteString("</egressOnlyInternetGatewaySet></DescribeEgressOnlyInternetGatewaysResponse>")
	resp.Body = io.NopCloser(&out)
	resp.ContentLength = int64(out.Len())
	resp.Header.Set("Content-Length", strconv.Itoa(out.Len()))
	return nil
}

// paramsKey carries a request's query-protocol parameters to ModifyResponse.
type paramsKey struct{}
