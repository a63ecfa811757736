package server

import (
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/registry"
)

// metrics are this server's own Prometheus collectors, on a registry of its
// own (never the global default) so that tests and several servers in one
// process do not collide.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	gc       *gcMetrics
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_http_requests_total",
			Help: "HTTP requests served, by route kind, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slipway_http_request_duration_seconds",
			Help: "Time from request start to the handler's return.",
			// Up to 5 minutes: large blob transfers are requests too.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_http_request_bytes_total",
			Help: "Request body bytes read.",
		}, []string{"route", "method"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_http_response_bytes_total",
			Help: "Response body bytes written.",
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.gc = newGCMetrics(m.reg)
	return m
}

// gcMetrics describe the garbage collections this replica ran (sum them
// over replicas: each run is counted by the one replica that ran it).
type gcMetrics struct {
	lastSuccess  prometheus.Gauge
	bytesFreed   prometheus.Counter
	objectsFreed prometheus.Counter
	pending      prometheus.Gauge
	duration     prometheus.Histogram
	runs         *prometheus.CounterVec
}

func newGCMetrics(reg prometheus.Registerer) *gcMetrics {
	m := &gcMetrics{
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slipway_gc_last_success_timestamp_seconds",
			Help: "Unix time at which the last successful collection that was not a dry run ended (0: none since start).",
		}),
		bytesFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slipway_gc_bytes_freed_total",
			Help: "Bytes the garbage collector deleted (dry runs not counted).",
		}),
		objectsFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slipway_gc_objects_freed_total",
			Help: "Objects the garbage collector deleted (dry runs not counted).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slipway_gc_pending_deletions",
			Help: "Deletions the running (or last) collection has committed to and not finished.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slipway_gc_duration_seconds",
			Help: "Wall time of whole collections.",
			// A few seconds (a test registry) to hours (millions of objects).
			Buckets: []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800},
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_gc_runs_total",
			Help: "Collections tried, by outcome: success, error, lease_held (another collector was running).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.lastSuccess, m.bytesFreed, m.objectsFreed, m.pending, m.duration, m.runs)
	for _, outcome := range []string{"success", "error", "lease_held"} {
		m.runs.WithLabelValues(outcome) // shown at 0 before the first run
	}
	return m
}

// finished records a run that ended with rep and err after took.
func (m *gcMetrics) finished(rep gc.Report, err error, took time.Duration) {
	m.duration.Observe(took.Seconds())
	if !rep.DryRun {
		m.bytesFreed.Add(float64(max(rep.Freed.Bytes, 0)))
		m.objectsFreed.Add(float64(max(rep.Freed.Objects, 0)))
	}
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		return
	}
	m.runs.WithLabelValues("success").Inc()
	if !rep.DryRun {
		m.lastSuccess.SetToCurrentTime()
	}
}

func (m *metrics) observe(route, method string, status int, d time.Duration, in, out int64) {
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
	m.bytesIn.WithLabelValues(route, method).Add(float64(in))
	m.bytesOut.WithLabelValues(route, method).Add(float64(out))
}

// routeLabel keeps the route label low-cardinality: /v2/ paths (which embed
// repository names and digests) become their kind, other paths the
// registered route pattern, and anything unmatched "other".
func routeLabel(c *gin.Context) string {
	if rt, ok := registry.RouteOf(c); ok {
		return rt.Kind
	}
	if p := c.FullPath(); p != "" && p != "/v2" && p != "/v2/*path" {
		return p
	}
	return "other"
}

// methodLabel bounds the method label: clients may send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func (s *Server) metricsErrorLog() *log.Logger {
	return slog.NewLogLogger(s.log.Handler(), slog.LevelError)
}
