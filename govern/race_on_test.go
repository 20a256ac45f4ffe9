//go:build race

package govern_test

// raceEnabled: the race detector changes what escapes, so allocation
// counts are checked without it.
const raceEnabled = true
