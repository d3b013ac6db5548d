package timeline

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

var keep = flag.String("keep", "", "also write the test's timeline into this directory, to look at")

func TestWriteDrawsEveryLaneAndPhase(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	lanes := []probe.Lane{{Target: "ingress istio-system/istio-ingressgateway", Family: probe.IPv4}, {Target: "ingress istio-system/istio-ingressgateway", Family: probe.IPv6}, {Target: "http://[::1]:8080/", Family: probe.IPv6}}
	var samples []probe.Sample
	for ms := 0; ms < 20000; ms += 200 {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		samples = append(samples,
			probe.Sample{Time: at, Family: probe.IPv4, Target: lanes[0].Target, OK: ms < 8000 || ms >= 12000, Latency: 2 * time.Millisecond},
			probe.Sample{Time: at, Family: probe.IPv6, Target: lanes[1].Target, OK: ms >= 12000, Latency: 3 * time.Millisecond},
			probe.Sample{Time: at, Family: probe.IPv6, Target: lanes[2].Target, OK: true, Lost: ms == 4000, Latency: time.Millisecond})
	}
	marks := []probe.Mark{{Name: "aws", Start: t0}, {Name: "nodes", Start: t0.Add(300 * time.Millisecond)}, {Name: "network", Start: t0.Add(600 * time.Millisecond)},
		{Name: "mesh", Start: t0.Add(time.Second)}, {Name: "workloads", Start: t0.Add(1200 * time.Millisecond)}, {Name: "gateway", Start: t0.Add(7 * time.Second)}, {Name: "validate", Start: t0.Add(13 * time.Second)}}
	dir := t.TempDir()
	d := Data{Start: t0, End: t0.Add(20 * time.Second), Interval: 200 * time.Millisecond, Lanes: lanes, Samples: samples, Marks: marks}
	files, err := Write(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("wrote %v", files)
	}
	if *keep != "" {
		if _, err := Write(*keep, d); err != nil {
			t.Fatal(err)
		}
	}

	f, err := os.Open(filepath.Join(dir, PNGFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("timeline.png does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 100 {
		t.Fatalf("timeline.png is %v", b)
	}

	texts := svgTexts(t, filepath.Join(dir, SVGFile))
	for _, want := range []string{"IPv4 ingress istio-system/istio-ingressgateway", "IPv6 ingress istio-system/istio-ingressgateway", "IPv6 http://[::1]:8080/", "network", "gateway", "validate"} {
		if !strings.Contains(texts, want) {
			t.Errorf("timeline.svg has no text %q: %q", want, texts)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, SVGFile))
	if !bytes.Contains(bytes.ToLower(svg), []byte("rgb(215,25,28)")) && !bytes.Contains(bytes.ToLower(svg), []byte("#d7191c")) {
		t.Errorf("timeline.svg draws no failure in red")
	}

	c, err := os.Open(filepath.Join(dir, CSVFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := csv.NewReader(c).ReadAll()
	if err != nil || len(rows) != len(samples)+1 || rows[0][4] != "result" {
		t.Fatalf("samples.csv: %d rows, %v", len(rows), err)
	}
}

// svgTexts parses the SVG as XML and returns its text nodes, joined.
func svgTexts(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("timeline.svg is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	if root != "svg" {
		t.Fatalf("timeline.svg's root element is %q", root)
	}
	return strings.Join(texts, "\n")
}
