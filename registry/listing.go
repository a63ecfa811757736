package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxPage bounds one page of tags or repositories; a larger n is clamped
// and the Link header leads on.
const maxPage = 10000

// pageSize reads ?n=. Absent: 0 (all, still bounded by maxPage).
func pageSize(c *gin.Context) (int, error) {
	s, ok := c.GetQuery("n")
	if !ok || s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, oci(errcode.ErrorCodePaginationNumberInvalid, "n must be a non-negative integer", s)
	}
	return min(n, maxPage), nil
}

func setNextLink(c *gin.Context, path string, n int, last string) {
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	q.Set("last", last)
	c.Header("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (r *Registry) listTags(c *gin.Context, name string) {
	ctx := c.Request.Context()
	n, err := pageSize(c)
	if err != nil {
		r.fail(c, err)
		return
	}
	tags := []string{}
	more := false
	if _, set := c.GetQuery("n"); !set || n > 0 {
		limit := n
		if limit == 0 {
			limit = maxPage
		}
		page, m, err := r.meta.tagPage(ctx, name, c.Query("last"), limit)
		if err != nil {
			r.fail(c, err)
			return
		}
		tags, more = append(tags, page...), m
	}
	if len(tags) == 0 {
		if ok, err := r.meta.RepositoryExists(ctx, name); err == nil && !ok {
			r.fail(c, oci(errcode.ErrorCodeNameUnknown, "repository name not known to registry", name))
			return
		}
	}
	if more {
		setNextLink(c, "/v2/"+name+"/tags/list", n, tags[len(tags)-1])
	}
	c.JSON(http.StatusOK, gin.H{"name": name, "tags": tags})
}

func (r *Registry) catalog(c *gin.Context) {
	n, err := pageSize(c)
	if err != nil {
		r.fail(c, err)
		return
	}
	repos := []string{}
	more := false
	if _, set := c.GetQuery("n"); !set || n > 0 {
		limit := n
		if limit == 0 {
			limit = maxPage
		}
		names, m, err := r.meta.Repositories(c.Request.Context(), c.Query("last"), limit)
		if err != nil {
			r.fail(c, err)
			return
		}
		repos, more = append(repos, names...), m
	}
	if more && len(repos) > 0 {
		setNextLink(c, "/v2/_catalog", n, repos[len(repos)-1])
	}
	c.JSON(http.StatusOK, gin.H{"repositories": repos})
}

// referrers lists the manifests whose subject is the given digest, as an
// OCI image index, optionally filtered by artifactType.
func (r *Registry) referrers(c *gin.Context, name, ref string) {
	ctx := c.Request.Context()
	d, err := parseDigest(ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	all, _, err := r.meta.referrers(ctx, name, d)
	if err != nil {
		r.fail(c, err)
		return
	}
	filter := c.Query("artifactType")
	descs := []v1.Descriptor{}
	for _, desc := range all {
		if filter == "" || desc.ArtifactType == filter {
			descs = append(descs, desc)
		}
	}
	if filter != "" {
		c.Header("OCI-Filters-Applied", "artifactType")
	}
	body, _ := json.Marshal(v1.Index{
		Versioned: specsVersioned,
		MediaType: v1.MediaTypeImageIndex,
		Manifests: descs,
	})
	c.Data(http.StatusOK, v1.MediaTypeImageIndex, body)
}
