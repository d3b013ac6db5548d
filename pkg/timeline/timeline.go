// Package timeline writes what `probe watch` (and upgrade --measure) saw as
// files a person can look at and a program can read: a timeline chart, one
// lane per family and target with failures in red and phase boundaries
// marked (PNG and SVG, drawn with gonum/plot), every request as CSV and
// the report as JSON.
package timeline

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// File names written into the report directory.
const (
	PNGFile = "timeline.png"
	SVGFile = "timeline.svg"
	CSVFile = "samples.csv"
	// JSONFile holds the report, as -o json prints it.
	JSONFile = "availability.json"
)

// Colours of the lanes: a request that succeeded, failed, or whose result
// was lost.
var (
	colourOK    = color.RGBA{R: 0x2e, G: 0x9e, B: 0x44, A: 0xff}
	colourFail  = color.RGBA{R: 0xd7, G: 0x19, B: 0x1c, A: 0xff}
	colourLost  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	colourPhase = color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}
)

// Data is what the files are made of.
type Data struct {
	Start, End time.Time
	Interval   time.Duration
	Lanes      []probe.Lane
	Samples    []probe.Sample
	Marks      []probe.Mark
	// Report, when set, is written as JSONFile.
	Report any
}

// LaneName is how a lane is labelled on the chart and in the CSV.
func LaneName(l probe.Lane) string { return string(l.Family) + " " + l.Target }

// Write writes the chart (PNG and SVG) and the samples (CSV) into dir,
// creating it, and returns the paths written.
func Write(dir string, d Data) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--report-dir: %w", err)
	}
	d.Samples = slices.Clone(d.Samples)
	slices.SortStableFunc(d.Samples, func(a, b probe.Sample) int { return a.Time.Compare(b.Time) })
	var written []string
	csvPath := filepath.Join(dir, CSVFile)
	if err := writeCSV(csvPath, d); err != nil {
		return written, err
	}
	written = append(written, csvPath)
	if d.Report != nil {
		b, err := json.MarshalIndent(d.Report, "", "  ")
		if err != nil {
			return written, err
		}
		path := filepath.Join(dir, JSONFile)
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return written, fmt.Errorf("writing %s: %w", path, err)
		}
		written = append(written, path)
	}
	p, err := chart(d)
	if err != nil {
		return written, fmt.Errorf("drawing the timeline: %w", err)
	}
	height := vg.Length(1.2+0.45*float64(len(d.Lanes))) * vg.Inch
	for _, name := range []string{PNGFile, SVGFile} {
		path := filepath.Join(dir, name)
		if err := p.Save(11*vg.Inch, height, path); err != nil {
			return written, fmt.Errorf("writing %s: %w", path, err)
		}
		written = append(written, path)
	}
	return written, nil
}

// segment is a stretch of one lane in one state.
type segment struct {
	from, to float64
	colour   color.Color
}

func stateColour(s probe.Sample) color.Color {
	switch {
	case s.Lost:
		return colourLost
	case s.OK:
		return colourOK
	}
	return colourFail
}

// segments merges a lane's consecutive samples of the same state: each
// sample stands for the time until the next one (the last for one
// interval), so a failure is red until the next success.
func segments(d Data, l probe.Lane) []segment {
	var own []probe.Sample
	for _, s := range d.Samples {
		if s.Target == l.Target && s.Family == l.Family {
			own = append(own, s)
		}
	}
	var out []segment
	for i, s := range own {
		from := s.Time.Sub(d.Start).Seconds()
		to := from + d.Interval.Seconds()
		if i+1 < len(own) {
			to = own[i+1].Time.Sub(d.Start).Seconds()
		}
		c := stateColour(s)
		if n := len(out); n > 0 && out[n-1].colour == c && out[n-1].to >= from-1e-9 {
			out[n-1].to = to
			continue
		}
		out = append(out, segment{from: from, to: to, colour: c})
	}
	return out
}

func chart(d Data) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Availability per family, %s to %s (red: failed requests)", d.Start.UTC().Format("2006-01-02 15:04:05"), d.End.UTC().Format("15:04:05 MST"))
	p.X.Label.Text = "seconds since start"
	total := d.End.Sub(d.Start).Seconds()
	p.X.Min, p.X.Max = 0, max(total, d.Interval.Seconds())
	names := make([]string, len(d.Lanes))
	for i, l := range d.Lanes {
		// Lane 0 at the top: the y axis grows upwards.
		y := float64(len(d.Lanes) - 1 - i)
		names[len(d.Lanes)-1-i] = LaneName(l)
		for _, seg := range segments(d, l) {
			poly, err := plotter.NewPolygon(plotter.XYs{{X: seg.from, Y: y - 0.3}, {X: seg.to, Y: y - 0.3}, {X: seg.to, Y: y + 0.3}, {X: seg.from, Y: y + 0.3}})
			if err != nil {
				return nil, err
			}
			poly.Color = seg.colour
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
	}
	if len(names) > 0 {
		p.NominalY(names...)
	}
	top := float64(len(d.Lanes)) - 0.3
	p.Y.Min, p.Y.Max = -0.6, top+0.9
	var labels plotter.XYLabels
	for i, m := range d.Marks {
		x := m.Start.Sub(d.Start).Seconds()
		line, err := plotter.NewLine(plotter.XYs{{X: x, Y: -0.6}, {X: x, Y: top + 0.05 + 0.28*float64(i%3)}})
		if err != nil {
			return nil, err
		}
		line.LineStyle = draw.LineStyle{Color: colourPhase, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
		p.Add(line)
		// Short phases start close together: their names take turns on
		// three rows, so they do not print over each other.
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: top + 0.05 + 0.28*float64(i%3)})
		labels.Labels = append(labels.Labels, m.Name)
	}
	if len(labels.Labels) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Color = colourPhase
		}
		p.Add(l)
	}
	return p, nil
}

func writeCSV(path string, d Data) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--report-dir: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"time", "offsetSeconds", "family", "target", "result", "latencyMs", "httpCode", "remoteIP", "error"})
	for _, s := range d.Samples {
		result := "ok"
		switch {
		case s.Lost:
			result = "lost"
		case !s.OK:
			result = "fail"
		}
		_ = w.Write([]string{
			s.Time.UTC().Format(time.RFC3339Nano),
			strconv.FormatFloat(s.Time.Sub(d.Start).Seconds(), 'f', 3, 64),
			string(s.Family), s.Target, result,
			strconv.FormatFloat(float64(s.Latency.Microseconds())/1000, 'f', 1, 64),
			strconv.Itoa(s.HTTPCode), s.RemoteIP, s.Error,
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
