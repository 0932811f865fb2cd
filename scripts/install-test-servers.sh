#!/usr/bin/env bash
# Installs the real servers and reference tools the test suite and bench/ use:
# Postfix + Dovecot (real-server tests; openssl makes the throw-away TLS
# certificate of tests/server/harness.py), SpamAssassin, pflogsumm (benchmarks),
# Chromium (HTML report test). Debian/Ubuntu, as root; elsewhere it says what it
# skipped and the tests that need those programs skip themselves.
set -euo pipefail

PACKAGES=(postfix dovecot-core dovecot-imapd openssl spamassassin pflogsumm chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-test-servers: all present (${PACKAGES[*]})"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-test-servers: not root or no apt-get; missing ${missing[*]}: the tests that need them will be skipped" >&2
    exit 0
fi

echo "install-test-servers: installing ${missing[*]}"
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string mailwarden.test" | debconf-set-selections
# Keep the packages' post-install scripts from starting the system services:
# the tests start their own instances on 127.0.0.1 with throw-away configs.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
# (an if, not `[ ] && rm`: where the file was there already, Docker's default, the test's
# status 1 would become the script's exit status under set -e and fail `make test`)
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-test-servers: done"
