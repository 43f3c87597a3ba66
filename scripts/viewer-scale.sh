#!/usr/bin/env bash
# The block viewer at 100,000 blocks in 200 groups (folder to folder, a sidecar after its first
# run): the size of `/` and of its answers, the time of `/api/v1/status`, `/api/v1/groups` and a
# filtered query (curl, median of 5), and the time to a first paint of `/` in headless Chromium
# (a screenshot of `/` less a screenshot of a blank page, median of 5 each).
#
#   bash scripts/viewer-scale.sh [BIN]     # BIN: a release build (default target/release/bucketflow)
#
# Prints a Markdown table. Traffic stays on 127.0.0.1.
set -euo pipefail
BIN=${1:-target/release/bucketflow}
N_GROUPS=${N_GROUPS:-200}
PER=${PER_GROUP:-500}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" gen --to "file://$work/src" --groups "$N_GROUPS" --blocks-per-group "$PER" --max-chunk-files 1 --max-chunk-bytes 200 >/dev/null
"$BIN" replicate --from "file://$work/src" --to "file://$work/dst" --interval 1h --http-address 127.0.0.1:0 \
  --log.format json 2>"$work/log" &
pid=$!
until grep -q "replication run finished" "$work/log" 2>/dev/null; do sleep 1; done
address=$(grep -o '"address":"[^"]*"' "$work/log" | head -1 | cut -d'"' -f4)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "http://$address$1"; done | median; }
size() { curl -s "http://$address$1" | wc -c; }

shot() {
  local profile; profile=$(mktemp -d)
  local start end
  start=$(date +%s.%N)
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir="$profile" \
    --window-size=1200,1000 --screenshot="$profile/shot.png" "$1" >/dev/null 2>&1
  end=$(date +%s.%N)
  rm -rf "$profile"
  echo "$end - $start" | bc
}
blank="data:text/html,<p>blank</p>"
paint_page=$(for _ in 1 2 3 4 5; do shot "http://$address/"; done | median)
paint_blank=$(for _ in 1 2 3 4 5; do shot "$blank"; done | median)

filtered='/api/v1/blocks?labels=cluster%3D%22c7%22&state=replicated&per_page=100'
echo "| what | bytes | seconds (median of 5) |"
echo "|---|---|---|"
echo "| \`/\` | $(size /) | $(timed /) |"
echo "| first paint of \`/\` in Chromium, less a blank page's | | $(echo "$paint_page - $paint_blank" | bc) |"
echo "| \`/api/v1/status\` | $(size /api/v1/status) | $(timed /api/v1/status) |"
echo "| \`/api/v1/groups\` | $(size /api/v1/groups) | $(timed /api/v1/groups) |"
echo "| \`$filtered\` | $(size "$filtered") | $(timed "$filtered") |"
echo "| \`/?labels=cluster%3D%22c7%22\` | $(size '/?labels=cluster%3D%22c7%22') | $(timed '/?labels=cluster%3D%22c7%22') |"
echo "bucketflow RSS after the run: $(ps -o rss= -p $pid) KiB"
echo "blocks: $(ls "$work/src" | wc -l) in the source, $N_GROUPS groups"
