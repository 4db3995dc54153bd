package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The provider fixture's time provider is built from the Go module proxy
// into a filesystem mirror by scripts/provider-mirror.sh (about 50 s the
// first time; the mirror stays in the Go cache's parent dir). The dev and
// the bare script both get it through Terraform's implied local mirror:
// XDG_DATA_HOME/terraform/plugins, which a CLI config of /dev/null leaves in
// use, so the bare script runs exactly as for every other fixture.

// timeProvider is the provider's registry path and version in the mirror.
const timeProvider = "registry.terraform.io/hashicorp/time/0.14.2"

// ProviderMirror makes sure the mirror exists (building it when missing)
// and returns an XDG_DATA_HOME under work whose terraform/plugins holds a
// copy of its time provider.
func ProviderMirror(ctx context.Context, root, work string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "provider-mirror.sh"))
	cmd.Dir = root
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/provider-mirror.sh: %v\n%s", err, tail(errOut.String(), 1000))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	mirror := strings.TrimSpace(lines[len(lines)-1])
	platform := runtime.GOOS + "_" + runtime.GOARCH
	pkg := filepath.Join(mirror, filepath.FromSlash(timeProvider), platform)
	if fi, err := os.Stat(pkg); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the provider mirror %s has no %s/%s", mirror, timeProvider, platform)
	}
	xdg := filepath.Join(work, "xdg-data")
	link := filepath.Join(xdg, "terraform", "plugins", filepath.FromSlash(timeProvider), platform)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return "", err
	}
	// A copy (hard links where it can), not a link to the mirror: the
	// runner's sandbox shows the implied mirror dir alone, where a link
	// out of it would lead nowhere.
	_ = os.RemoveAll(link)
	if err := os.MkdirAll(link, 0o755); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(pkg)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		from, to := filepath.Join(pkg, e.Name()), filepath.Join(link, e.Name())
		if err := os.Link(from, to); err != nil {
			b, rerr := os.ReadFile(from)
			if rerr != nil {
				return "", rerr
			}
			if err := os.WriteFile(to, b, 0o755); err != nil {
				return "", err
			}
		}
	}
	return xdg, nil
}
