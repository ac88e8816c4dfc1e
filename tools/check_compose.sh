#!/usr/bin/env bash
# Validate the deployment files without a Docker engine:
#   compose.yaml                      docker compose config (v2 plugin) or docker-compose (v1)
#   deploy/prometheus/*.yml           promtool check config / check rules / test rules
#   deploy/alertmanager/*.yml         amtool check-config
#   deploy/grafana/dashboards/*.json  valid JSON, every panel query valid PromQL (promtool)
#   deploy/otel-collector, deploy/loki, grafana provisioning: YAML parses (docker-compose's PyYAML)
# (deploy/alloy/config.alloy has no offline validator: Alloy itself checks it at start.)
#
# A missing validator is reported and skipped (exit 0) unless
# CHECK_COMPOSE_REQUIRE=1, which turns every skip into a failure (CI).
# Install the validators on Debian/Ubuntu with:
#   apt-get install -y --no-install-recommends docker-compose prometheus prometheus-alertmanager
# (make deploy-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
skipped=0
skip() {
  echo "check_compose: SKIPPED $1"
  skipped=$((skipped + 1))
}

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  compose=()
fi

if ((${#compose[@]})); then
  # An env file with only the secrets compose requires (placeholders), so a
  # developer's own .env cannot hide a missing default.
  empty_env=$(mktemp)
  trap 'rm -f "$empty_env"' EXIT
  printf '%s\n' REDIS_PASSWORD=check MONGO_ROOT_PASSWORD=check \
    SIWE_DOMAIN=app.example.com SIWE_URI=https://app.example.com >"$empty_env"
  if "${compose[@]}" --env-file "$empty_env" -f compose.yaml config --quiet; then
    echo "check_compose: compose.yaml is valid (${compose[*]})"
  else
    echo "check_compose: compose.yaml is INVALID (${compose[*]})"
    failed=1
  fi
else
  skip "compose.yaml: neither 'docker compose' nor 'docker-compose' is installed"
fi

yaml_python=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c 'import yaml' >/dev/null 2>&1; then
    yaml_python=$candidate
    break
  fi
done
if [[ -n "$yaml_python" ]]; then
  if "$yaml_python" - deploy/otel-collector/config.yaml deploy/loki/*.yml \
    deploy/grafana/provisioning/*/*.yml <<'EOF'
import sys
import yaml

for path in sys.argv[1:]:
    with open(path) as handle:
        if not isinstance(yaml.safe_load(handle), dict):
            sys.exit(f"{path}: not a YAML mapping")
print(f"check_compose: {len(sys.argv) - 1} collector/loki/grafana YAML files parse")
EOF
  then :; else failed=1; fi
else
  skip "collector/grafana YAML: no python3 with PyYAML"
fi

if command -v promtool >/dev/null 2>&1; then
  promtool check config deploy/prometheus/prometheus.yml || failed=1
  promtool check config deploy/prometheus/prometheus.dev.yml || failed=1
  promtool test rules deploy/prometheus/alerts.test.yml || failed=1
  # Every dashboard query, with Grafana's $__rate_interval and $__range filled in, must be
  # valid PromQL.
  queries=$(mktemp)
  python3 - deploy/grafana/dashboards/*.json >"$queries" <<'EOF' || failed=1
import json
import sys

print("groups:\n  - name: dashboard-queries\n    rules:")
count = 0
for path in sys.argv[1:]:
    with open(path) as handle:
        dashboard = json.load(handle)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            count += 1
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
            print(f"      - record: dashboard:query_{count}\n        expr: {json.dumps(expr)}")
EOF
  if promtool check rules "$queries" >/dev/null; then
    echo "check_compose: dashboard queries are valid PromQL"
  else
    promtool check rules "$queries" || true
    failed=1
  fi
  rm -f "$queries"
else
  skip "prometheus config, alert rules and dashboard queries: promtool is not installed"
  python3 -m json.tool deploy/grafana/dashboards/minequest.json >/dev/null || failed=1
fi

if command -v amtool >/dev/null 2>&1; then
  if amtool check-config deploy/alertmanager/alertmanager.yml >/dev/null; then
    echo "check_compose: alertmanager config is valid (amtool)"
  else
    amtool check-config deploy/alertmanager/alertmanager.yml || true
    failed=1
  fi
else
  skip "alertmanager config: amtool is not installed (prometheus-alertmanager)"
fi

if ((failed)); then
  echo "check_compose: FAILED"
  exit 1
fi
if ((skipped)) && [[ "${CHECK_COMPOSE_REQUIRE:-0}" == "1" ]]; then
  echo "check_compose: $skipped check(s) skipped and CHECK_COMPOSE_REQUIRE=1"
  exit 1
fi
if ((skipped)); then
  echo "check_compose: OK ($skipped check(s) skipped)"
else
  echo "check_compose: OK"
fi
