// Package modules embeds the Terraform modules terratask ships: the demo
// module that `terratask dev` uses as its runners' default module.
package modules

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Demo holds the demo module under "demo/".
//
//go:embed demo
var Demo embed.FS

// WriteDemo materialises the demo module in dir (created if missing),
// replacing files of an earlier version.
func WriteDemo(dir string) error {
	return writeTree(Demo, "demo", dir)
}

func writeTree(fsys fs.FS, root, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating module dir: %w", err)
	}
	return fs.WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		// Write beside and rename, so a runner never reads half a file.
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
		return os.Rename(tmp, dst)
	})
}
