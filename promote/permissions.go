package promote

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/slipway/slipway/config"
)

// Actions checked by the service (auth's names).
const (
	actionPull    = "pull"
	actionPromote = "promote"
)

func (s *Service) stage(name string) (config.Stage, bool) {
	for _, st := range s.opts.Stages {
		if st.Name == name {
			return st, true
		}
	}
	return config.Stage{}, false
}

// may reports whether the caller may take action on repo. For many
// checks in one call, use permissions.
func (s *Service) may(ctx context.Context, repo, action string) bool {
	perms, err := s.permissions(ctx)
	return err == nil && perms(repo, action)
}

// permissions looks the caller up once and answers for any repository.
func (s *Service) permissions(ctx context.Context) (func(repo, action string) bool, error) {
	if s.opts.Allowed == nil {
		return func(string, string) bool { return true }, nil
	}
	allowed, err := s.opts.Allowed(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	return func(repo, action string) bool { return slices.Contains(allowed(repo), action) }, nil
}

func (s *Service) requireCaller(ctx context.Context) error {
	if s.opts.Actor != nil && s.opts.Actor(ctx) == "" {
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	}
	return nil
}

func (s *Service) actor(ctx context.Context) string {
	if s.opts.Actor == nil {
		return ""
	}
	return s.opts.Actor(ctx)
}

// edge checks that images may go from the source repository's stage to
// stage to, and returns the target repository and the two stages.
func (s *Service) edge(sourceRepo, to string) (target string, from, toStage config.Stage, err error) {
	toStage, ok := s.stage(to)
	if !ok {
		return "", from, toStage, invalid("unknown stage %q", to)
	}
	from, ok = config.StageOf(s.opts.Stages, sourceRepo)
	if !ok {
		return "", from, toStage, errorf(http.StatusConflict, CodeEdgeNotAllowed, "%s is in no stage: only repositories under a stage prefix can be promoted", sourceRepo)
	}
	if !slices.Contains(toStage.PromoteFrom, from.Name) {
		return "", from, toStage, errorf(http.StatusConflict, CodeEdgeNotAllowed, "promotion from %s to %s is not configured (stage %s promotes from %v)", from.Name, to, to, toStage.PromoteFrom)
	}
	return toStage.Prefix + strings.TrimPrefix(sourceRepo, from.Prefix), from, toStage, nil
}

// CanPromote reports whether the caller may promote from sourceRepo to
// stage toStage: the edge is configured and checkPromote finds nothing
// missing.
func (s *Service) CanPromote(ctx context.Context, sourceRepo, toStage string) bool {
	target, _, _, err := s.edge(sourceRepo, toStage)
	if err != nil {
		return false
	}
	may, err := s.permissions(ctx)
	return err == nil && checkPromote(may, sourceRepo, target) == nil
}

// checkPromote: promoting needs pull and promote on the source, and
// promote on the target (a grant on the target repository is what allows
// the edge). Pull, because a promotion reads the source: without it, an
// account could promote what it may not pull into a repository where it
// may, and pull it there. A rollback is a promotion from and to its own
// repository (its earlier digest), so it needs both there.
func checkPromote(may func(repo, action string) bool, source, target string) *Error {
	if !may(source, actionPull) || !may(source, actionPromote) {
		verb := "promote"
		if source == target {
			verb = "rollback"
		}
		return errorf(http.StatusForbidden, CodeDenied, "%s needs pull and promote on %s", verb, source)
	}
	if !may(target, actionPromote) {
		return errorf(http.StatusForbidden, CodeDenied, "promote needs promote on %s (the target)", target)
	}
	return nil
}
