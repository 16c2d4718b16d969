//go:build !linux

package main

import "time"

// nap sleeps about 0.1 ms (bench measures on Linux only; this builds).
func nap() { time.Sleep(100 * time.Microsecond) }
