//go:build !linux

package jobs

// notifySupported says whether READY=notify can be used: sd_notify needs
// SCM_CREDENTIALS to tell who sent a datagram, which only Linux has.
const notifySupported = false
