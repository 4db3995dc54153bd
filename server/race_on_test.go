//go:build race

package server

// raceEnabled: the race detector slows the 100k paging test tenfold.
const raceEnabled = true
