package promote

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// registerReleases adds the release routes (Register lists them).
func (s *Service) registerReleases(r gin.IRouter) {
	r.POST("/releases", s.postRelease)
	r.GET("/releases", s.listReleasesAPI)
	r.GET("/releases/:id", s.getRelease)
	r.POST("/releases/:id/rollback", s.postReleaseRollback)
}

func (s *Service) postRelease(c *gin.Context) {
	var req ReleaseRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	rel, err := s.CreateRelease(c.Request.Context(), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/releases/"+rel.ID)
	c.JSON(http.StatusCreated, rel)
}

func (s *Service) listReleasesAPI(c *gin.Context) {
	limit, err := queryLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.Releases(c.Request.Context(), limit, c.Query("cursor"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (s *Service) getRelease(c *gin.Context) {
	rel, err := s.GetRelease(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rel)
}

func (s *Service) postReleaseRollback(c *gin.Context) {
	reason, err := rollbackReason(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	rel, err := s.RollbackRelease(c.Request.Context(), c.Param("id"), reason)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/releases/"+rel.ID)
	c.JSON(http.StatusCreated, rel)
}
