package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout keeps /readyz answering quickly when the store hangs:
// probes have their own short deadlines.
const readyTimeout = 2 * time.Second

func (s *Server) routeOps(e *gin.Engine) {
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		e.Handle(m, "/healthz", s.healthz)
		e.Handle(m, "/readyz", s.readyz)
	}
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		Registry: s.metrics.reg, // counts its own scrape errors
		ErrorLog: s.metricsErrorLog(),
	})))
}

// healthz: the process is alive and serving HTTP.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz: this replica can do useful work, i.e. its store answers. A load
// balancer takes it out of rotation otherwise, and while it shuts down.
func (s *Server) readyz(c *gin.Context) {
	if s.draining.Load() {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}
