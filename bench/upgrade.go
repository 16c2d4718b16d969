package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// upgrader is a subject that can replace itself in place (overseer
// upgrade): peers have no such thing.
type upgrader interface {
	// upgradeGap runs one upgrade while a client PINGs the socket, and
	// returns the longest time between two answered PINGs and how long
	// the upgrade command took to answer.
	upgradeGap() (gap, answer time.Duration, err error)
}

// pingEvery is the pause between one PING's answer and the next PING:
// short enough to resolve the gap to about a millisecond, long enough
// that the client does not take a core from the daemon it measures (two
// cores here).
const pingEvery = 200 * time.Microsecond

// upgradeGap: see upgrader.
func (o *overseerSubject) upgradeGap() (gap, answer time.Duration, err error) {
	sock := filepath.Join(o.dir, "data", "overseer.sock")
	if err := ping(sock); err != nil {
		return 0, 0, err
	}
	stop := make(chan struct{})
	type result struct {
		gap time.Duration
		err error
	}
	res := make(chan result, 1)
	go func() {
		last := time.Now()
		var worst time.Duration
		for {
			if err := ping(sock); err != nil {
				res <- result{err: fmt.Errorf("PING during the upgrade: %w", err)}
				return
			}
			now := time.Now()
			worst = max(worst, now.Sub(last))
			last = now
			select {
			case <-stop:
				res <- result{gap: worst}
				return
			default:
			}
			for t := time.Now(); time.Since(t) < pingEvery; {
				nap()
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // the client is in its stride
	t0 := time.Now()
	err = o.cli("upgrade")
	answer = time.Since(t0)
	close(stop) // the pinger ends after its next answer
	r := <-res
	if err != nil {
		return 0, 0, err
	}
	return r.gap, answer, r.err
}

// ping sends PING on a new connection and reads its answer.
func ping(sock string) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("PING\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "OK ") {
		return fmt.Errorf("PING: %s", strings.TrimSpace(line))
	}
	return nil
}

// upgrades measures `overseer upgrade` with n jobs up, k times: the
// median and the worst of the longest unanswered time, and the median
// answer. No job may change pid.
func upgrades(s subject, u upgrader, n, k int, c *column) error {
	return withJobs(s, n, sleeper, func(time.Duration) error {
		before := marked(s.runID())
		var gaps, answers []time.Duration
		for range k {
			gap, answer, err := u.upgradeGap()
			if err != nil {
				return err
			}
			if verbose {
				fmt.Fprintf(os.Stderr, "bench: upgrade of %d jobs: unanswered %v, answer %v\n", n, gap, answer)
			}
			gaps, answers = append(gaps, gap), append(answers, answer)
			time.Sleep(100 * time.Millisecond)
		}
		after := marked(s.runID())
		for job, pids := range before {
			if !slices.Equal(pids, after[job]) {
				return fmt.Errorf("upgrade: job %s was %v, is %v: restarted", job, pids, after[job])
			}
		}
		c.upgradeGap[n] = quantile(gaps, 0.5)
		c.upgradeWorst[n] = slices.Max(gaps)
		c.upgradeAnswer[n] = quantile(answers, 0.5)
		return nil
	})
}
