package memtrim

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMapping(t *testing.T) {
	const exe = "/usr/bin/terratask"
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{"00400000-04e8a000 r-xp 00000000 00:1f 123 /usr/bin/terratask", true},
		{"04e8a000-0a6a8000 r--p 04a89000 00:1f 123 /usr/bin/terratask", true},
		{"0a6a8000-0a8b7000 rw-p 0a2a6000 00:1f 123 /usr/bin/terratask", false},
		{"7f0000000000-7f0000021000 r--s 00000000 00:1f 9 /usr/bin/terratask", false},
		{"7f0000000000-7f0000021000 r--p 00000000 00:1f 9 /usr/lib/other.so", false},
		{"34112800000-34116000000 rw-p 00000000 00:00 0", false},
	} {
		if _, _, ok := readOnlyMapping(c.line, exe); ok != c.ok {
			t.Errorf("%q: %v, want %v", c.line, ok, c.ok)
		}
	}
}

// rssFile is this process's resident file-backed memory, in kB.
func rssFile(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Skip("no RssFile")
	return 0
}

// TestReleaseShrinksTheResidentSet: the test binary's own pages leave the
// resident set, and the program runs on (its code comes back as used).
func TestReleaseShrinksTheResidentSet(t *testing.T) {
	before := rssFile(t)
	n, err := Release()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the kernel has no MADV_PAGEOUT")
	}
	if err != nil || n == 0 {
		t.Fatalf("Release = %d, %v", n, err)
	}
	after := rssFile(t)
	if after >= before {
		t.Fatalf("file-backed RSS %d kB before, %d kB after", before, after)
	}
	// Still running: code and read-only data fault back in.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal("strings broke")
	}
}
