#!/bin/sh
# Install the example configuration ($1) as the live one ($2, below
# $DESTDIR when meson installs into a staging tree) unless a file is
# already there: an administrator's edits always win over a reinstall.
set -eu
dest="${DESTDIR:-}$2"
if [ -e "$dest" ]; then
	echo "kmsd: keeping the existing $dest"
	exit 0
fi
install -D -m 0644 "$1" "$dest"
