package metrics

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// SDKHandler returns the Temporal SDK metrics handler (client.Options
// MetricsHandler) whose metrics NewRegistry exports: worker task slots,
// schedule-to-start latencies, poll failures and the rest of the SDK's
// metrics, under the SDK's own names (temporal_ prefix). Counters get the
// _total suffix; timers become histograms in seconds (_seconds). Their tags
// (namespace, task queue, workflow and activity type, poller type, RPC
// operation) are bounded by the deployment, never by the number of tasks.
func SDKHandler() client.MetricsHandler { return sdkHandler{c: sdkMetrics} }

// sdkBuckets are the histogram buckets of the SDK's timers, in seconds.
var sdkBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

var sdkMetrics = &sdkCollector{series: map[string]*sdkSeries{}, descs: map[string]*prometheus.Desc{}}

type sdkKind int

const (
	sdkCounter sdkKind = iota
	sdkGauge
	sdkTimer
)

// sdkCollector holds the SDK's series. The SDK names a metric and its tags
// at each use, so the label names of one metric are not fixed up front: it
// is an unchecked collector that emits constant metrics at scrape time.
type sdkCollector struct {
	mu     sync.Mutex
	series map[string]*sdkSeries
	descs  map[string]*prometheus.Desc
}

type sdkSeries struct {
	kind   sdkKind
	desc   *prometheus.Desc
	values []string

	count atomic.Int64  // counter value
	gauge atomic.Uint64 // float64 bits

	mu      sync.Mutex // timer
	buckets []uint64   // per bucket, not cumulative
	sum     float64
	n       uint64
}

func (c *sdkCollector) get(kind sdkKind, name string, tags map[string]string) *sdkSeries {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(byte('0' + kind))
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = tags[k]
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(tags[k])
	}
	key := b.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.series[key]; ok {
		return s
	}
	full := sanitizeName(name)
	switch kind {
	case sdkCounter:
		full += "_total"
	case sdkTimer:
		full += "_seconds"
	}
	labelNames := make([]string, len(keys))
	for i, k := range keys {
		labelNames[i] = sanitizeName(k)
	}
	dkey := full + "\x00" + strings.Join(labelNames, "\x00")
	desc, ok := c.descs[dkey]
	if !ok {
		desc = prometheus.NewDesc(full, "Temporal SDK metric "+name+".", labelNames, nil)
		c.descs[dkey] = desc
	}
	s := &sdkSeries{kind: kind, desc: desc, values: values}
	if kind == sdkTimer {
		s.buckets = make([]uint64, len(sdkBuckets))
	}
	c.series[key] = s
	return s
}

// sanitizeName maps a name onto Prometheus' metric and label name alphabet.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Describe sends nothing: the collector is unchecked.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	all := make([]*sdkSeries, 0, len(c.series))
	for _, s := range c.series {
		all = append(all, s)
	}
	c.mu.Unlock()
	for _, s := range all {
		switch s.kind {
		case sdkCounter:
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(s.count.Load()), s.values...)
		case sdkGauge:
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, math.Float64frombits(s.gauge.Load()), s.values...)
		case sdkTimer:
			s.mu.Lock()
			cum := make(map[float64]uint64, len(sdkBuckets))
			var acc uint64
			for i, ub := range sdkBuckets {
				acc += s.buckets[i]
				cum[ub] = acc
			}
			n, sum := s.n, s.sum
			s.mu.Unlock()
			ch <- prometheus.MustNewConstHistogram(s.desc, n, sum, cum, s.values...)
		}
	}
}

func (s *sdkSeries) Inc(d int64) { s.count.Add(d) }

func (s *sdkSeries) Update(v float64) { s.gauge.Store(math.Float64bits(v)) }

func (s *sdkSeries) Record(d time.Duration) {
	v := d.Seconds()
	i := sort.SearchFloat64s(sdkBuckets, v) // first bucket with bound >= v
	s.mu.Lock()
	if i < len(s.buckets) {
		s.buckets[i]++
	}
	s.n++
	s.sum += v
	s.mu.Unlock()
}

// sdkHandler is the client.MetricsHandler of one tag set.
type sdkHandler struct {
	c    *sdkCollector
	tags map[string]string
}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return sdkHandler{c: h.c, tags: merged}
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	return h.c.get(sdkCounter, name, h.tags)
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	return h.c.get(sdkGauge, name, h.tags)
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	return h.c.get(sdkTimer, name, h.tags)
}
