package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/udfhost/udfhost/internal/atomicfile"
)

// loadOrCreateHostID returns the host id kept in path, creating a random
// one ("h-" and 16 hex digits) on first start. The id names this host in
// every audit record it writes and in the records it keeps in a shared
// store, so it must survive restarts; want, if set (serve --host-id),
// must match a stored id or becomes the stored one.
func loadOrCreateHostID(path, want string) (string, error) {
	if want != "" {
		if err := checkHostID(want); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if err := checkHostID(id); err != nil {
			return "", fmt.Errorf("host id file %s: %w", path, err)
		}
		if want != "" && want != id {
			return "", fmt.Errorf("host id %q differs from %q kept in %s: a data directory belongs to one host (remove the file to rename the host)", want, id, path)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("host id file %s: %w", path, err)
	}
	id := want
	if id == "" {
		raw := make([]byte, 8)
		rand.Read(raw)
		id = "h-" + hex.EncodeToString(raw)
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("create host id: %w", err)
	}
	return id, nil
}

// checkHostID accepts 1 to 63 characters of [a-z0-9-], starting with a
// letter or digit: the id appears in object keys and audit records.
func checkHostID(id string) error {
	if id == "" || len(id) > 63 {
		return fmt.Errorf("host id %q must be 1 to 63 characters", id)
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0
		if !ok {
			return fmt.Errorf("host id %q: only a-z, 0-9 and '-' (not first) are allowed", id)
		}
	}
	return nil
}
