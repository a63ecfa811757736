package auth

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/storage"
)

// maxRobotBody bounds a robot creation request.
const maxRobotBody = 64 << 10

// CreateRobotRequest is the body of POST /api/v1/robots.
type CreateRobotRequest struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Grants      []config.Grant `json:"grants"`
	// ExpiresAt (RFC 3339) or ExpiresIn (a duration like "720h"), at most
	// one; neither: the robot does not expire.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn string     `json:"expires_in,omitempty"`
}

// RobotView is a robot as the API shows it: never its secret.
type RobotView struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Login       string         `json:"login"`
	Description string         `json:"description,omitempty"`
	Grants      []config.Grant `json:"grants"`
	CreatedAt   time.Time      `json:"created_at"`
	CreatedBy   string         `json:"created_by"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	LastUsedAt  *time.Time     `json:"last_used_at,omitempty"`
}

// CreatedRobot is the answer to a creation: the only time the secret is
// shown.
type CreatedRobot struct {
	RobotView
	Secret string `json:"secret"`
}

func viewOf(r *Robot) RobotView {
	return RobotView{
		ID: r.ID, Name: r.Name, Login: r.Login(), Description: r.Description, Grants: r.Grants,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt,
	}
}

// CreateRobot serves POST /api/v1/robots (admins): 201 with the secret,
// 400 for a bad request, 409 when the name is taken.
func (s *Service) CreateRobot(c *gin.Context) {
	var req CreateRobotRequest
	if e := httpbody.DecodeJSON(c.Writer, c.Request, maxRobotBody, &req); e != nil {
		c.AbortWithStatusJSON(e.Status, APIError{Code: e.Code, Message: e.Message})
		return
	}
	robot, msg := s.newRobot(req)
	if msg != "" {
		apiFail(c, http.StatusBadRequest, msg)
		return
	}
	p, _ := PrincipalFrom(c.Request.Context())
	robot.CreatedBy = p.Name
	created, secret, err := s.robots.create(c.Request.Context(), robot)
	switch {
	case errors.Is(err, errRobotExists):
		apiFail(c, http.StatusConflict, fmt.Sprintf("a robot named %q exists", req.Name))
		return
	case err != nil:
		s.apiStoreFail(c, err)
		return
	}
	s.log.InfoContext(c.Request.Context(), "robot account created", "robot", created.Name, "by", p.Name)
	c.Header("Location", "/api/v1/robots/"+created.Name)
	c.JSON(http.StatusCreated, CreatedRobot{RobotView: viewOf(&created), Secret: secret})
}

// newRobot validates a creation request ("" when it is fine).
func (s *Service) newRobot(req CreateRobotRequest) (Robot, string) {
	if !ValidRobotName(req.Name) {
		return Robot{}, "name must be 1-64 of a-z 0-9, separated by single . _ or -"
	}
	if len(req.Description) > 1024 {
		return Robot{}, "description must be at most 1024 bytes"
	}
	if len(req.Grants) == 0 {
		return Robot{}, "grants must list at least one {repos, actions}"
	}
	for i, g := range req.Grants {
		if field, msg := config.CheckGrant(g); msg != "" {
			return Robot{}, fmt.Sprintf("grants[%d].%s %s", i, field, msg)
		}
	}
	r := Robot{Name: req.Name, Description: req.Description, Grants: req.Grants}
	now := s.now()
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != "":
		return Robot{}, "give expires_at or expires_in, not both"
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return Robot{}, fmt.Sprintf("expires_in must be a positive duration like \"720h\", got %q", req.ExpiresIn)
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		r.ExpiresAt = &t
	case req.ExpiresAt != nil:
		if !req.ExpiresAt.After(now) {
			return Robot{}, "expires_at must be in the future"
		}
		t := req.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r, ""
}

// ListRobots serves GET /api/v1/robots (admins).
func (s *Service) ListRobots(c *gin.Context) {
	list, err := s.robots.list(c.Request.Context())
	if err != nil {
		s.apiStoreFail(c, err)
		return
	}
	views := make([]RobotView, 0, len(list))
	for _, r := range list {
		views = append(views, viewOf(r))
	}
	c.JSON(http.StatusOK, gin.H{"robots": views})
}

// GetRobot serves GET /api/v1/robots/:name (admins).
func (s *Service) GetRobot(c *gin.Context) {
	r, _, err := s.robots.get(c.Request.Context(), c.Param("name"))
	if errors.Is(err, storage.ErrNotFound) {
		apiFail(c, http.StatusNotFound, fmt.Sprintf("no robot named %q", c.Param("name")))
		return
	}
	if err != nil {
		s.apiStoreFail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(r))
}

// RevokeRobot serves DELETE /api/v1/robots/:name (admins): 204, or 404.
// The robot gets no token from then on, and its refresh tokens stop
// working at once; access tokens already issued live out their short TTL.
func (s *Service) RevokeRobot(c *gin.Context) {
	name := c.Param("name")
	err := s.robots.revoke(c.Request.Context(), name)
	if errors.Is(err, storage.ErrNotFound) {
		apiFail(c, http.StatusNotFound, fmt.Sprintf("no robot named %q", name))
		return
	}
	if err != nil {
		s.apiStoreFail(c, err)
		return
	}
	p, _ := PrincipalFrom(c.Request.Context())
	s.log.InfoContext(c.Request.Context(), "robot account revoked", "robot", name, "by", p.Name)
	c.Status(http.StatusNoContent)
}
