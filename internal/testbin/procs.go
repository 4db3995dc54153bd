package testbin

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// CountProcs is how many of the host's processes have a command line that
// holds marker: how tests find what a sandboxed or killed command left.
func CountProcs(marker string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(marker)) {
			n++
		}
	}
	return n
}
