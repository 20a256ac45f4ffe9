//go:build !race

package govern_test

const raceEnabled = false
