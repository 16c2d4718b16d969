//go:build race

package main

// raceOn says the race detector is on: it multiplies memory, so RSS
// bounds do not hold.
const raceOn = true
