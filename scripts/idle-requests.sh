#!/usr/bin/env bash
# Counts the requests of an idle continuous-mode run: a synthetic bucket of BLOCKS blocks (20
# groups) on s3s-fs at 127.0.0.1, replicated once by a sidecar (`--interval 3s`), then the
# requests of its later runs, which have nothing to copy, read from its /metrics.
#
#   scripts/idle-requests.sh target/release/bucketflow [BLOCKS]
set -euo pipefail
bin="$(realpath "$1")"
blocks="${2:-600}"
per_group=$((blocks / 20))
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/source" "$work/root/target"
s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key idle --secret-key idle-secret "$work/root" >"$work/s3s-fs.log" 2>&1 &
sleep 1
url() { echo "s3://$1?endpoint=http://127.0.0.1:$s3_port&allow_http=true&access_key_id=idle&secret_access_key=idle-secret&region=us-east-1"; }
"$bin" gen --to "$(url source)" --groups 20 --blocks-per-group "$per_group" --max-chunk-bytes 1024 >/dev/null 2>&1
"$bin" replicate --from "$(url source)" --to "$(url target)" --interval 3s --http-address "127.0.0.1:$http_port" \
    --log.level warn 2>"$work/bucketflow.log" &
metrics() { curl -s "127.0.0.1:$http_port/metrics"; }
runs() { metrics | awk '/^thanos_replicate_replication_runs_total\{result="success"\}/ {print $2}'; }
requests() { metrics | awk '/^bucketflow_requests_total\{/ {sum += $2} END {print sum + 0}'; }
wait_runs() { until [ "$(runs 2>/dev/null || echo 0)" -ge "$1" ] 2>/dev/null; do sleep 0.5; done; }
wait_runs 1
first=$(requests)
wait_runs 2
second=$(requests)
wait_runs 3
third=$(requests)
echo "$blocks blocks: first run $first requests; idle runs $((second - first)) and $((third - second)) requests"
metrics | grep '^bucketflow_requests_total' | sed 's/^/  after 3 runs: /'
