#!/usr/bin/env bash
# Copies Envoy's ext_authz protos and their imports, byte for byte, from the pinned
# @grpc/grpc-js-xds devDependency (which ships envoy-api, xds, protoc-gen-validate and
# googleapis under deps/) into proto/, then regenerates src/gen. Never edit the copies:
# rerun this after bumping @grpc/grpc-js-xds. google/rpc/status.proto is already vendored
# (from google-proto-files, wire-identical) and is not copied.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=node_modules/@grpc/grpc-js-xds/deps
files=(
  envoy-api:envoy/service/auth/v3/external_auth.proto
  envoy-api:envoy/service/auth/v3/attribute_context.proto
  envoy-api:envoy/config/core/v3/address.proto
  envoy-api:envoy/config/core/v3/backoff.proto
  envoy-api:envoy/config/core/v3/base.proto
  envoy-api:envoy/config/core/v3/extension.proto
  envoy-api:envoy/config/core/v3/http_uri.proto
  envoy-api:envoy/config/core/v3/socket_option.proto
  envoy-api:envoy/annotations/deprecation.proto
  envoy-api:envoy/type/v3/http_status.proto
  envoy-api:envoy/type/v3/percent.proto
  envoy-api:envoy/type/v3/semantic_version.proto
  xds:udpa/annotations/migrate.proto
  xds:udpa/annotations/status.proto
  xds:udpa/annotations/versioning.proto
  xds:xds/annotations/v3/status.proto
  xds:xds/core/v3/context_params.proto
  protoc-gen-validate:validate/validate.proto
)
for entry in "${files[@]}"; do
  src="$deps/${entry%%:*}/${entry#*:}"
  dst="proto/${entry#*:}"
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst"
done
PATH="$PWD/node_modules/.bin:$PATH" buf generate
