package promote

import "context"

// CanRollbackRelease reports whether the caller may roll back release rel
// (the admin's release page decides on it whether to show the button):
// the release is complete, and the caller may roll back in every
// member's repository (pull and promote there, as Rollback). Only a
// hint: RollbackRelease decides, and refuses with the reason.
func (s *Service) CanRollbackRelease(ctx context.Context, rel Release) bool {
	if rel.State != ReleaseComplete || len(rel.Members) == 0 || s.requireCaller(ctx) != nil {
		return false
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return false
	}
	for _, m := range rel.Members {
		if _, ok := s.stage(m.Stage); !ok || checkPromote(may, m.Repository, m.Repository) != nil {
			return false
		}
	}
	return true
}
