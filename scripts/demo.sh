#!/usr/bin/env bash
# Starts the demo upstream services and gatehouse with examples/demo.yaml, prints curl commands
# that work against it, and stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/gatehouse}

node examples/demo-services.mjs &
services=$!
trap 'kill $services 2>/dev/null; kill $gh 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
sleep 0.5
"$bin" validate -c examples/demo.yaml
"$bin" run -c examples/demo.yaml &
gh=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done

cat <<'TXT'

Gatehouse is serving http://127.0.0.1:8080 (access log below). Try:

  # load-balanced over products-1 and products-2, 10% to the products-v2 canary; /api stripped
  for i in $(seq 10); do curl -s localhost:8080/api/products/42 | grep -o '"upstream":"[^"]*"'; done

  # BFF routing: the x-client header picks the backend
  curl -s -H 'x-client: mobile' localhost:8080/m/home

  # template rewrite: /items/{id} -> /catalog/items/{id}
  curl -s localhost:8080/items/7

  # API keys: 401 without one, the consumer's name sent upstream with one
  curl -si localhost:8080/partners/1
  curl -s -H 'x-api-key: demo-key-123' localhost:8080/partners/1
  # a CORS preflight answered by the gateway; paths are normalised before routing
  curl -si -X OPTIONS -H 'Origin: https://partners.example.com' -H 'Access-Control-Request-Method: GET' localhost:8080/partners/1
  curl -s --path-as-is -H 'x-api-key: demo-key-123' 'localhost:8080/partners/a/%2e%2e/1'

  # the gateway's own errors, as JSON with the request id
  curl -si localhost:8080/nowhere            # 404 no_route
  curl -si -X POST localhost:8080/api/products/1   # 405 with Allow
  curl -si localhost:8080/offline/x          # 502 upstream_connect_failed
  curl -si localhost:8080/slow               # 504 upstream_timeout after 1s

  # resilience: one of two targets is down; retries hide it until its health check takes it out
  # (curl -s localhost:9901/status shows it unhealthy)
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080/resilient/echo; done; echo
  # rate limiting: 5 a minute per client, with RateLimit headers; the 6th gets 429 + Retry-After
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080/limited/products/1; done; echo
  curl -si localhost:8080/limited/products/1 | grep -i -E '^(HTTP|ratelimit|retry-after)'

  # operations: status, metrics, and a reload (edit examples/demo.yaml first, or not)
  curl -s localhost:9901/status
  curl -s localhost:9901/metrics | grep gatehouse_requests_total
  curl -s -X POST localhost:9901/reload      # or: kill -HUP <pid>

Ctrl-C stops everything.
TXT
wait $gh
