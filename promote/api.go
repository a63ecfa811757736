package promote

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/internal/httpbody"
)

// maxRequestBody bounds a promotion request.
const maxRequestBody = 64 << 10

// Register adds the API under r (mounted at /api/v1 behind the auth
// middleware):
//
//	POST /promotions                 promote (201 record; 200 for a no-op)
//	GET  /promotions                 ledger, newest first (?repository=&tag=&stage=&limit=&cursor=)
//	GET  /promotions/{id}            one record
//	POST /promotions/{id}/rollback   re-point the tag to the record's previous digest
//	GET  /repositories               repositories (?q=&stage=&limit=&cursor=)
//	GET  /repositories/{name}/tags   tags with digest, size, platforms, stages
//	POST /releases                   several images into one stage, all or none (201 release)
//	GET  /releases                   releases, newest first (?limit=&cursor=)
//	GET  /releases/{id}              one release with its member records (finished first)
//	POST /releases/{id}/rollback     every member back to its previous digest, as a new release
func (s *Service) Register(r gin.IRouter) {
	r.POST("/promotions", s.postPromotion)
	r.GET("/promotions", s.listPromotions)
	r.GET("/promotions/:id", s.getPromotion)
	r.POST("/promotions/:id/rollback", s.postRollback)
	r.GET("/repositories", s.listRepositories)
	r.GET("/repositories/*path", s.repositoryTags)
	s.registerReleases(r)
}

// fail answers err as {"code","message"}; anything but an *Error is a 500
// whose detail goes to the log, not to the client.
func (s *Service) fail(c *gin.Context, err error) {
	var e *Error
	if !errors.As(storeError(err), &e) {
		s.log.ErrorContext(c.Request.Context(), "promotion api failed", "path", c.Request.URL.Path, "error", err.Error())
		e = errorf(http.StatusInternalServerError, CodeInternal, "internal error")
	}
	c.AbortWithStatusJSON(e.Status, e)
}

func (s *Service) postPromotion(c *gin.Context) {
	var req Request
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	rec, created, err := s.Promote(c.Request.Context(), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	c.Header("Location", "/api/v1/promotions/"+rec.ID)
	c.JSON(status, rec)
}

func decodeJSON(c *gin.Context, v any) error {
	if ct := c.ContentType(); ct != "" && ct != "application/json" {
		return invalid("Content-Type must be application/json, got %q", ct)
	}
	if e := httpbody.DecodeJSON(c.Writer, c.Request, maxRequestBody, v); e != nil {
		return errorf(e.Status, e.Code, "%s", e.Message)
	}
	return nil
}

func (s *Service) listPromotions(c *gin.Context) {
	limit, err := queryLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.History(c.Request.Context(), Query{
		Repository: c.Query("repository"), Tag: c.Query("tag"), Stage: c.Query("stage"),
		Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (s *Service) getPromotion(c *gin.Context) {
	rec, err := s.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rec)
}

// rollbackReason reads a rollback's optional body {"reason": "…"}.
func rollbackReason(c *gin.Context) (string, error) {
	var body struct {
		Reason string `json:"reason"`
	}
	if c.Request.ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return "", err
		}
	}
	return body.Reason, nil
}

func (s *Service) postRollback(c *gin.Context) {
	reason, err := rollbackReason(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	rec, err := s.Rollback(c.Request.Context(), c.Param("id"), reason)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/promotions/"+rec.ID)
	c.JSON(http.StatusCreated, rec)
}

func (s *Service) listRepositories(c *gin.Context) {
	limit, err := queryLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.Repositories(c.Request.Context(), RepositoryQuery{
		Search: c.Query("q"), Stage: c.Query("stage"), Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// queryLimit reads ?limit= (absent: 0, the service's default).
func queryLimit(c *gin.Context) (int, error) {
	l := c.Query("limit")
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 {
		return 0, invalid("limit must be a positive integer, got %q", l)
	}
	return n, nil
}

// repositoryTags serves /repositories/{name}/tags; names contain slashes,
// so the route is a wildcard.
func (s *Service) repositoryTags(c *gin.Context) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(c.Param("path"), "/"), "/tags")
	if !ok {
		s.fail(c, errorf(http.StatusNotFound, CodeNotFound, "no such endpoint: use /api/v1/repositories/{name}/tags"))
		return
	}
	tags, err := s.Tags(c.Request.Context(), name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"repository": name, "tags": tags})
}
