package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/storage"
)

// codeGCRunning answers a start refused because a collection runs
// (snake case, like every /api/ code).
const codeGCRunning = "gc_running"

// Bounds of GET /api/v1/gc/runs, and how long POST waits for the run id.
const (
	maxGCRunsListed = 100
	defaultGCRuns   = 20
	gcIDWait        = 5 * time.Second
)

// routeGC adds the collector's API, for administrators only: a report
// names keys of every repository (which a user granted a few may not
// see), and starting a run costs the whole registry's store requests.
//
//	GET  /api/v1/gc/runs?limit=N   reports, newest first (default 20, at most 100)
//	POST /api/v1/gc/runs           start a run now: 202 {"run","dry_run"}; 409 gc_running
//	                               if this replica runs one or another holds the lease.
//	                               Optional body {"dry_run": true}.
func (s *Server) routeGC(e *gin.Engine) {
	g := e.Group("/api/v1/gc", s.auth.API, s.auth.RequireAdmin)
	g.GET("/runs", s.listGCRuns)
	g.POST("/runs", s.startGCRun)
}

func gcFail(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, auth.APIError{Code: code, Message: msg})
}

func (s *Server) listGCRuns(c *gin.Context) {
	n := defaultGCRuns
	if l := c.Query("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 1 || v > maxGCRunsListed {
			gcFail(c, http.StatusBadRequest, auth.CodeBadRequest, "limit must be a whole number from 1 to 100, got "+strconv.Quote(l))
			return
		}
		n = v
	}
	if s.gc.backend.reports == nil {
		c.JSON(http.StatusOK, gin.H{"runs": []gc.Report{}})
		return
	}
	reps, err := s.gc.backend.reports(c.Request.Context(), n)
	if err != nil {
		s.log.ErrorContext(c.Request.Context(), "gc api: listing runs", "error", err.Error())
		if errors.Is(err, storage.ErrUnavailable) {
			gcFail(c, http.StatusServiceUnavailable, auth.CodeUnavailable, "storage is unavailable, try again later")
			return
		}
		gcFail(c, http.StatusInternalServerError, auth.CodeInternal, "internal error")
		return
	}
	if reps == nil {
		reps = []gc.Report{}
	}
	c.JSON(http.StatusOK, gin.H{"runs": reps})
}

// startGCRun answers once the collector has said its run id, or after
// gcIDWait with an empty id (the run goes on in the background either
// way; GET lists it).
func (s *Server) startGCRun(c *gin.Context) {
	var body struct {
		DryRun bool `json:"dry_run"`
	}
	if c.Request.ContentLength != 0 {
		if e := httpbody.DecodeJSON(c.Writer, c.Request, 4<<10, &body); e != nil {
			gcFail(c, e.Status, e.Code, e.Message)
			return
		}
	}
	dry := body.DryRun || s.cfg.GC.DryRun
	run, err := s.gc.start(s.gc.runs, "api", dry)
	switch {
	case errors.Is(err, errGCRunning):
		gcFail(c, http.StatusConflict, codeGCRunning, err.Error())
		return
	case err != nil:
		s.log.ErrorContext(c.Request.Context(), "gc api: starting a run", "error", err.Error())
		gcFail(c, http.StatusServiceUnavailable, auth.CodeUnavailable, "the collector could not start; the server log says why")
		return
	}
	var id string
	wait := time.NewTimer(gcIDWait)
	defer wait.Stop()
	select {
	case <-wait.C:
	case id = <-run.id:
	case <-run.done:
		select {
		case id = <-run.id:
		default:
		}
	case <-c.Request.Context().Done():
	}
	c.Header("Location", "/api/v1/gc/runs")
	c.JSON(http.StatusAccepted, gin.H{"run": id, "dry_run": dry})
}
