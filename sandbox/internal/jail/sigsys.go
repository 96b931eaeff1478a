package jail

/*
#include <signal.h>
#include <string.h>
#include <unistd.h>

// udfhost_sigsys reports the syscall the seccomp filter refused on stderr
// and ends the process: the filter's default action is to trap, and this
// handler turns the trap into a kill the host can explain. Only
// async-signal-safe calls: write(2) and _exit(2), both on the allowlist.
static void udfhost_sigsys(int sig, siginfo_t *si, void *uc) {
	char buf[64];
	const char *p = "udfhost-seccomp-violation syscall=";
	int n = 0;
	while (p[n]) { buf[n] = p[n]; n++; }
	int nr = si->si_syscall;
	char digits[12];
	int d = 0;
	if (nr < 0) nr = 0;
	do { digits[d++] = '0' + nr % 10; nr /= 10; } while (nr > 0 && d < 11);
	while (d > 0) buf[n++] = digits[--d];
	buf[n++] = '\n';
	(void)write(2, buf, n);
	_exit(159);
}

static int udfhost_install_sigsys(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = udfhost_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL);
}
*/
import "C"

import "fmt"

// SigsysExitCode is how a worker ends after the seccomp filter trapped a
// syscall (see udfhost_sigsys); the host reads it as a seccomp violation.
const SigsysExitCode = 159

// SeccompViolationMarker starts the line a worker writes to its stderr
// when its seccomp filter trapped a syscall; the syscall number follows.
// The host watches the worker's stderr for it.
const SeccompViolationMarker = "udfhost-seccomp-violation syscall="

// installSigsysHandler replaces the Go runtime's SIGSYS handler (which
// would print a goroutine dump without the syscall number).
func installSigsysHandler() error {
	if rc := C.udfhost_install_sigsys(); rc != 0 {
		return fmt.Errorf("install SIGSYS handler: sigaction returned %d", int(rc))
	}
	return nil
}
