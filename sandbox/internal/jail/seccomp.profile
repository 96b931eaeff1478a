# The seccomp allowlist of every udfhost worker, installed on all threads
# after wazero has compiled the module and before guest code runs.
#
# Format: <syscall> <action> # <why>. Actions: allow; thread (clone, only
# with CLONE_THREAD); enosys / eperm (refused with that errno where a
# graceful failure is what the Go runtime or glibc needs). Anything not
# listed traps: the worker's SIGSYS handler reports the syscall on stderr
# and ends the process, and the host audits a sandbox violation naming it.
#
# Measured, not guessed: scripts/measure-syscalls.sh runs workers under
# strace -f through calls of both ABIs, concurrent batches, traps,
# deadlines in both interrupt modes, memory growth, a Go guest, driver
# compiles, compile-only validation and an orderly stop, and lists every
# syscall traced after the point where this filter is installed
# (bin/syscalls.measured).
# TestSeccompProfileCoversMeasurement keeps the two in step. Lines marked
# [not measured] are added on reasoning given in the line.

# --- the host socket, and the Go runtime's network poller on it
read              allow   # frames from the host (the inherited socket)
write             allow   # answers to the host; the SIGSYS handler's report on stderr
writev            allow   # frame header and payload in one call (net.Buffers)
epoll_pwait       allow   # Go's netpoller waits for the socket to be readable
epoll_ctl         allow   # netpoller (un)registers the socket and timers
close             allow   # files the compilation cache opened
fcntl             allow   # os.Open sets close-on-exec / non-blocking on new fds

# --- memory: Go's heap, wazero's linear memories and compiled code
mmap              allow   # heap arenas, instance memories, executable pages of compiled drivers
munmap            allow   # memory of closed instances goes back
mprotect          allow   # wazero flips compiled code from writable to executable; guard pages
madvise           allow   # Go's scavenger returns free pages (MADV_DONTNEED)

# --- threads and scheduling in the Go runtime
futex             allow   # every lock and park/unpark of Go's scheduler
clone             thread  # new OS threads for the scheduler; without CLONE_THREAD (fork) it traps
clone3            enosys  # glibc's pthread_create tries clone3 first, whose flags seccomp cannot read (they are in memory); ENOSYS makes it fall back to clone, checked above
set_robust_list   allow   # glibc sets up each new thread
rseq              allow   # glibc registers restartable sequences on each new thread
sigaltstack       allow   # each new Go thread installs its signal stack
rt_sigprocmask    allow   # Go blocks/unblocks signals around thread creation
rt_sigreturn      allow   # return from a signal handler (Go's async preemption, SIGURG)
gettid            allow   # Go records each thread's id at start
getpid            allow   # Go's preemption signals its own threads: tgkill(getpid(), tid, SIGURG)
tgkill            allow   # async preemption of long-running goroutines (SIGURG to one of its own threads)
sched_yield       allow   # spinning in Go's scheduler and locks
nanosleep         allow   # Go's sysmon thread sleeps between checks (usleep)
sched_getaffinity allow   # Go runtime reads the CPU set when it starts a thread pool (GOMAXPROCS)
exit_group        allow   # orderly stop when the host closes the socket; the SIGSYS handler's _exit
exit              allow   # [not measured] a thread ends when its locked goroutine exits; it cannot affect anything else
restart_syscall   allow   # [not measured] the kernel restarts a nanosleep/futex interrupted by a signal through it
clock_gettime     allow   # [not measured] fallback when the vDSO cannot answer (wazero's deadlines, Go timers)

# --- the worker's private compilation cache (in its own tmpfs, under Landlock)
openat            allow   # wazero's file cache reads and writes entries; Landlock confines every path to the private /tmp
newfstatat        allow   # os.Stat of cache entries and of the cache directory
pread64           allow   # reading a cache entry
fsync             allow   # wazero syncs a new cache entry before renaming it in place
renameat          allow   # ... and renames it in place
unlinkat          allow   # [not measured] wazero removes a half-written entry when writing failed

# --- validation: a compile-only worker hands back the cache it produced
getdents64        allow   # it lists its private cache directory (Landlock keeps it to /tmp)
fstat             allow   # os.ReadFile sizes each cache file before reading it
