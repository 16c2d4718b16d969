//go:build race

package jobs

// raceOn says the race detector is on: it changes frame sizes and
// stacks, so stack bounds do not hold.
const raceOn = true
