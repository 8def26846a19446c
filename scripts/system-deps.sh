#!/usr/bin/env bash
# Debian packages the tests run against for real: Prometheus (integration tests start their own
# server on 127.0.0.1), promtool, Lua 5.4 (Argo CD health-check tests), and chromium with its
# chromedriver (the dashboard's browser tests drive it headless through selenium). Installs only what is
# missing, so re-runs cost nothing; --no-install-recommends keeps node-exporter and friends out.
set -euo pipefail
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
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
