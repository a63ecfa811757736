package harness

import (
	"fmt"
	"os"
)

func (r *Registry) writeConfig() error {
	var cfg string
	switch kind {
	case KindStock:
		storage := fmt.Sprintf("  filesystem:\n    rootdirectory: %q\n", r.Root)
		if s := r.S3; s != nil {
			storage = fmt.Sprintf(`  s3:
    accesskey: %q
    secretkey: %q
    region: %q
    regionendpoint: %q
    forcepathstyle: true
    bucket: %q
    secure: false
    rootdirectory: %q
  redirect:
    disable: %t
`, MinIOAccessKey, MinIOSecretKey, MinIORegion, s.MinIO.Endpoint(), s.Bucket, "/"+s.Root, !s.Redirect)
		}
		cfg = fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
%s  delete:
    enabled: true
http:
  addr: %q
  secret: %q
`, storage, r.Host, r.secret)
	default:
		storage := fmt.Sprintf("  filesystem:\n    root: %q\n", r.Root)
		if s := r.S3; s != nil {
			storage = fmt.Sprintf(`  s3:
    endpoint: %q
    bucket: %q
    access_key: %q
    secret_key: %q
    secure: false
    root: %q
    create_bucket: %t
    redirect: %t
`, s.MinIO.Addr, s.Bucket, MinIOAccessKey, MinIOSecretKey, s.Root, s.CreateBucket, s.Redirect)
			if s.PartSize != "" {
				storage += fmt.Sprintf("    part_size: %q\n", s.PartSize)
			}
			if s.RedirectMinSize != "" {
				storage += fmt.Sprintf("    redirect_min_size: %q\n", s.RedirectMinSize)
			}
			if s.Redirect {
				storage += fmt.Sprintf("    redirect_endpoint: %q\n", s.RedirectHost())
			}
		}
		publicURL := r.URL()
		if r.publicURL != "" {
			publicURL = r.publicURL
		}
		if r.noPublicURL {
			publicURL = ""
		}
		cfg = fmt.Sprintf(`http:
  addr: %q
  public_url: %q
  secret: %q
  drain_delay: %s
%sstorage:
%s  test_write_delay: %s
log:
  level: debug
%s%s`, r.Host, publicURL, r.secret, r.drainDelay, r.httpConfig, storage, r.writeDelay, r.authConfig(), r.extraConfig)
	}
	return os.WriteFile(r.cfgPath, []byte(cfg), 0o644)
}
