#!/usr/bin/env bash
# Debian packages the tests run against for real: Prometheus (integration tests start their own
# server on 127.0.0.1), promtool, Lua 5.4 (Argo CD health-check tests), and chromium with its
# chromedriver (the dashboard's browser tests drive it headless through selenium). Installs only what is
# missing, so re-runs cost nothing; --no-install-recommends keeps node-exporter and friends out.
set -euo pipefail
# Another apt (unattended-upgrades, a parallel set-up) may hold its lock: wait up to 5 minutes.
# DPkg::Lock::Timeout waits for dpkg's lock; `apt-get update`'s lists lock is retried here.
apt_get() {
  local attempt out
  for attempt in $(seq 60); do
    if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" 2>&1); then
      [ -z "$out" ] || printf '%s\n' "$out"
      return 0
    fi
    if ! grep -qi "could not get lock\|unable to acquire\|lock" <<<"$out"; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    echo "apt is busy (another process holds its lock); waiting ($attempt/60)" >&2
    sleep 5
  done
  printf '%s\n' "$out" >&2
  return 1
}

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v lua5.4 >/dev/null || missing+=(lua5.4)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "need Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
