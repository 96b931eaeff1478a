package server

import "sync"

// keyLocks serialises work per key (an artifact digest): creating a
// function, deleting one and deleting an artifact exclude each other for
// one pod's code, while other tenants go on; a function whose worker takes
// its whole start deadline holds up nobody else. Waiters for one key are
// served in arrival order: none starves behind later callers, and a test
// can queue calls in the order it wants them run.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	queue []chan struct{} // waiters, first in line first; the holder is not in it
}

// lock takes the lock for key and returns its unlock.
func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	unlock = func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(l.queue) == 0 {
			delete(k.locks, key)
			return
		}
		next := l.queue[0]
		l.queue = l.queue[1:]
		close(next) // handed over: the lock stays held
	}
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
		k.mu.Unlock()
		return unlock
	}
	turn := make(chan struct{})
	l.queue = append(l.queue, turn)
	k.mu.Unlock()
	<-turn
	return unlock
}

// waiting returns how many callers wait for key.
func (k *keyLocks) waiting(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.locks[key]; l != nil {
		return len(l.queue)
	}
	return 0
}
