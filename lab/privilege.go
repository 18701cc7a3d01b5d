package lab

import (
	"os"
	"strconv"
	"strings"
)

// lowestStandardPort is the lowest port any lab service uses (FTP data).
const lowestStandardPort = 20

// canBindPrivileged reports whether this process may bind ports below 1024.
func canBindPrivileged() bool {
	if os.Geteuid() == 0 {
		return true
	}
	// Linux: the capability, or a lowered start of the unprivileged range.
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				const capNetBindService = 10
				if err == nil && caps&(1<<capNetBindService) != 0 {
					return true
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if start, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && start <= lowestStandardPort {
			return true
		}
	}
	return false
}
