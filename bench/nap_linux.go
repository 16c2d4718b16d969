package main

import "syscall"

// nap sleeps about 0.1 ms. Not time.Sleep: the runtime rounds a short wait
// in epoll up to a millisecond, which would make the watch the coarse part.
func nap() { syscall.Nanosleep(&syscall.Timespec{Nsec: 100_000}, nil) }
