#!/usr/bin/env bash
# Measures replication lag in a real continuous run: s3s-fs on 127.0.0.1 serves a source and a
# target bucket, a writer adds one small Thanos block to the source every few seconds (objects
# first, meta.json last, as an uploader does), and bucketflow replicates with `--interval 5s`.
# At the end it prints bucketflow_replication_lag_seconds's count and its p50 and p99, computed
# from the histogram's buckets as Prometheus's histogram_quantile does.
#
#   scripts/lag.sh [BUCKETFLOW_BIN] [SECONDS] [EVERY_SECONDS]
#
# Defaults: target/release/bucketflow, 60 seconds, a block every 3 seconds. Needs s3s-fs on PATH
# (.ci/install-test-servers.sh installs it) and python3.
set -euo pipefail
bin="${1:-target/release/bucketflow}"
seconds="${2:-60}"
every="${3:-3}"
work="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/s3/source" "$work/s3/target"
s3s-fs --host 127.0.0.1 --port "$port" --access-key lag --secret-key lag-secret "$work/s3" >"$work/s3s-fs.log" 2>&1 &
pids+=($!)
bucket() {
    printf 'type: S3\nconfig:\n  bucket: %s\n  endpoint: 127.0.0.1:%s\n  region: us-east-1\n  access_key: lag\n  secret_key: lag-secret\n  insecure: true\n' "$1" "$port"
}
sleep 1

"$bin" replicate --objstore.config "$(bucket source)" --objstore-to.config "$(bucket target)" \
    --interval 5s --http-address 127.0.0.1:0 --log.level info >"$work/bucketflow.log" 2>&1 &
pids+=($!)
address=""
for _ in $(seq 50); do
    address=$(grep -o 'address=[0-9.:]*' "$work/bucketflow.log" | head -1 | cut -d= -f2 || true)
    [ -n "$address" ] && break
    sleep 0.2
done
[ -n "$address" ] || { echo "lag.sh: bucketflow did not start:" >&2; cat "$work/bucketflow.log" >&2; exit 1; }

# The writer: one block every $every seconds into the source bucket's folder, which s3s-fs serves.
python3 - "$work/s3/source" "$seconds" "$every" <<'EOF'
import json, os, random, sys, time
root, seconds, every = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(ms):
    value = (ms << 80) | random.getrandbits(80)
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))
start, n = time.time(), 0
while time.time() - start < seconds:
    now = int(time.time() * 1000)
    block = ulid(now)
    os.makedirs(f"{root}/{block}/chunks")
    files = {"index": os.urandom(4096), "chunks/000001": os.urandom(16384)}
    for rel, data in files.items():
        with open(f"{root}/{block}/{rel}", "wb") as f:
            f.write(data)
    # Consecutive 2-hour ranges, as one Prometheus uploads them: the newest last.
    base = int(start * 1000) - 7_200_000 * 1000
    meta = {"ulid": block, "minTime": base + 7_200_000 * n, "maxTime": base + 7_200_000 * (n + 1), "version": 1,
            "compaction": {"level": 1, "sources": [block]},
            "thanos": {"labels": {"cluster": "lag"}, "downsample": {"resolution": 0}, "source": "sidecar",
                       "files": [{"rel_path": r, "size_bytes": len(d)} for r, d in files.items()] + [{"rel_path": "meta.json"}]}}
    with open(f"{root}/{block}/meta.json", "w") as f:
        json.dump(meta, f)
    n += 1
    time.sleep(every)
print(f"lag.sh: wrote {n} blocks in {time.time() - start:.0f} s")
EOF
# Two more intervals, for the last blocks to land.
sleep 12
curl -s "http://$address/metrics" >"$work/metrics.txt"
python3 - "$work/metrics.txt" <<'EOF'
import sys
buckets = []
for line in open(sys.argv[1]):
    if line.startswith("bucketflow_replication_lag_seconds_bucket"):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    if line.startswith("bucketflow_replication_lag_seconds_count"):
        count = float(line.split()[-1])
def quantile(q):
    rank, lower, below = q * count, 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            return le if le == float("inf") else lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = le, cumulative
print(f"lag.sh: {count:.0f} blocks committed; from the histogram's buckets: lag p50 {quantile(0.5):.2f} s, p99 {quantile(0.99):.2f} s")
EOF
# Each block's own lag, from the log's "block replicated" lines.
python3 - "$work/bucketflow.log" <<'EOF'
import math, re, sys
lags = sorted(float(m.group(1)) for m in re.finditer(r"lag_seconds=Some\(([0-9.]+)\)", open(sys.argv[1]).read()))
rank = lambda q: lags[max(1, math.ceil(q * len(lags))) - 1]
print(f"lag.sh: from the log, {len(lags)} blocks: lag p50 {rank(0.5):.2f} s, p99 {rank(0.99):.2f} s, max {lags[-1]:.2f} s")
EOF
