#!/bin/sh
# pip install, with the build secret `ca-bundle` as pip's CA bundle when one was given
# (a TLS-intercepting proxy between the build and the package index). Otherwise plain pip.
set -eu
bundle=/run/secrets/ca-bundle
if [ -f "$bundle" ] && grep -q "BEGIN CERTIFICATE" "$bundle"; then
  export PIP_CERT="$bundle"
fi
exec pip install "$@"
