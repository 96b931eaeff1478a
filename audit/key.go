package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// DefaultOrigin is the checkpoints' origin (and the signer key's name)
// when Options.Host is empty.
const DefaultOrigin = "udfhost"

// signerKey is the host's checkpoint signer, read from its key file.
type signerKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string // the verifier key, "NAME+HASH+BASE64"
}

// parseSignerKey reads a note signer key ("PRIVATE+KEY+NAME+HASH+BASE64")
// and derives its verifier key.
func parseSignerKey(skey string) (signerKey, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return signerKey{}, fmt.Errorf("not a note signer key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64>; the base64 may hold '+' too.
	rest := strings.TrimPrefix(skey, "PRIVATE+KEY+")
	_, rest, _ = strings.Cut(rest, "+")
	_, key64, _ := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return signerKey{}, errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return signerKey{}, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return signerKey{}, err
	}
	return signerKey{signer: s, verifier: v, vkey: vkey}, nil
}

// loadKey reads the signer key file at path.
func loadKey(path string) (signerKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return signerKey{}, fmt.Errorf("read checkpoint key: %w", err)
	}
	k, err := parseSignerKey(string(b))
	if err != nil {
		return signerKey{}, fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	return k, nil
}

// createKey makes a new key named name in path (mode 0600, written to a
// temporary file, fsynced and renamed, so a crash leaves either no key or
// a whole one).
func createKey(path, name string) (signerKey, error) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return signerKey{}, fmt.Errorf("generate checkpoint key: %w", err)
	}
	k, err := parseSignerKey(skey)
	if err != nil {
		return signerKey{}, err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return signerKey{}, fmt.Errorf("create checkpoint key: %w", err)
	}
	_, err = f.WriteString(skey + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return signerKey{}, fmt.Errorf("create checkpoint key %s: %w", path, err)
	}
	return k, nil
}

// keyName turns a host id into a valid note key name (no spaces, no '+').
func keyName(host string) string {
	if host == "" {
		return DefaultOrigin
	}
	return strings.Map(func(r rune) rune {
		if r == '+' || r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return '-'
		}
		return r
	}, host)
}

// PublicKey returns the note verifier key ("NAME+HASH+BASE64") of the log
// in dirOrPath (a directory holding audit.log, or a log's active file):
// derived from the signer key next to it. Give it to whoever checks the
// checkpoints and proofs (`udfhost audit pubkey`).
func PublicKey(dirOrPath string) (string, error) {
	ly := resolve(dirOrPath, "")
	k, err := loadKey(ly.key)
	if err != nil {
		return "", err
	}
	return k.vkey, nil
}

// keyExists reports whether path exists.
func keyExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// VerifierKey returns the verifier key of the Log's signer.
func (l *Log) VerifierKey() string { return l.key.vkey }
