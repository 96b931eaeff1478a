#!/bin/sh
# Writes the bearer tokens acme.yaml's token_file entries name, mode 0600,
# next to it in tokens/ (git ignores them: tokens are never committed).
# An existing token is kept, so running this again rotates nothing.
set -eu
dir=$(dirname "$0")/tokens
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
for name in ops audit; do
	f=$dir/$name.token
	if [ ! -s "$f" ]; then
		od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$f.tmp"
		echo >>"$f.tmp"
		mv "$f.tmp" "$f"
	fi
	chmod 600 "$f"
	echo "$f"
done
