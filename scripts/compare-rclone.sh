#!/usr/bin/env bash
# Optional: bucketflow against `rclone copy --transfers N` on the same synthetic bucket, on a loopback
# S3 server (moto). Both copy the whole bucket from one moto bucket to another; each run gets a fresh
# target bucket. Needs: a release build (cargo build --release), moto_server (pip install 'moto[server]'),
# rclone (apt-get install rclone). Everything stays on 127.0.0.1.
#
# Usage: scripts/compare-rclone.sh [TRANSFERS] [GROUPS] [BLOCKS_PER_GROUP] [RUNS]
set -euo pipefail
transfers="${1:-32}" groups="${2:-8}" blocks="${3:-16}" runs="${4:-3}"
cd "$(dirname "$0")/.."
bin=target/release/bucketflow
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v rclone >/dev/null || { echo "rclone is not installed (apt-get install rclone)" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "moto_server is not installed (pip install 'moto[server]')" >&2; exit 1; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$work" && exec moto_server --host 127.0.0.1 --port "$port" >"$work/moto.log" 2>&1) &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done

yaml() {
    printf 'type: S3\nconfig:\n  bucket: %s\n  endpoint: 127.0.0.1:%s\n  region: us-east-1\n  access_key: testing\n  secret_key: testing\n  insecure: true\n' "$1" "$port"
}
curl -s -X PUT "http://127.0.0.1:$port/source" >/dev/null
yaml source >"$work/source.yaml"
"$bin" gen --objstore.config-file "$work/source.yaml" --groups "$groups" --blocks-per-group "$blocks" \
    --max-chunk-bytes 262144 2>/dev/null

# rclone's remotes, from the environment (rclone needs AWS_CA_BUNDLE unset here).
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENV_AUTH=false \
    RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=testing RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=testing \
    RCLONE_CONFIG_MOTO_ENDPOINT="http://127.0.0.1:$port" RCLONE_CONFIG_MOTO_REGION=us-east-1

seconds() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
echo "bucket: $groups groups x $blocks blocks; concurrency/transfers $transfers; $runs runs each"
for i in $(seq "$runs"); do
    curl -s -X PUT "http://127.0.0.1:$port/bf$i" >/dev/null
    curl -s -X PUT "http://127.0.0.1:$port/rc$i" >/dev/null
    yaml "bf$i" >"$work/bf$i.yaml"
    bf=$(seconds "$bin" replicate --objstore.config-file "$work/source.yaml" --objstore-to.config-file "$work/bf$i.yaml" \
        --single-run --http-address 127.0.0.1:0 --concurrency "$transfers" --log.level error)
    rc=$(seconds env -u AWS_CA_BUNDLE rclone copy moto:source "moto:rc$i" --transfers "$transfers" --checkers "$transfers" -q)
    echo "run $i: bucketflow ${bf}s  rclone ${rc}s"
done
