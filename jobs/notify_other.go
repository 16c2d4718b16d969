//go:build !linux

package jobs

import (
	"errors"
	"log/slog"
)

// notifySupported says whether READY=notify can be used: sd_notify needs
// SCM_CREDENTIALS to tell who sent a datagram, which only Linux has.
const notifySupported = false

// notifier is a stand-in: Parse refuses READY=notify here.
type notifier struct{ routes notifyRoutes }

func newNotifier(string, *slog.Logger) *notifier { return &notifier{} }

func (*notifier) socket() (string, error) {
	return "", errors.New("READY=notify is supported on Linux only")
}

func (*notifier) close() {}
