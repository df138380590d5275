#!/usr/bin/env bash
# Writes the seed corpus for every fuzz target into fuzz/corpus/<target>/
# (gitignored) from the test vectors' `frame_hex` column.
#
#   fuzz/seeds.sh [VECTOR_DIR]
#
# VECTOR_DIR defaults to tests/vectors. Needs bash, awk, xxd. Safe to re-run: files are
# named after the vector row and overwritten.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vectors=${1:-$here/../tests/vectors}
compgen -G "$vectors/*.tsv" >/dev/null || { echo "no *.tsv in $vectors" >&2; exit 1; }
corpus=$here/corpus
targets=(frame_decoder request_decoders split_stream routing_keys)
for t in "${targets[@]}"; do mkdir -p "$corpus/$t"; done

# Selector byte of request_decoders: index into ctirouter_fuzz::REQUESTS.
declare -A request_index=(
    [3]=0 [5]=1 [7]=2 [93]=3 [95]=4 [97]=5 [101]=6 [103]=7 [32]=8 [36]=9 [38]=10 [40]=11
    [42]=12 [44]=13 [46]=14 [48]=15 [50]=16 [52]=17 [54]=18 [56]=19 [58]=20 [60]=21 [62]=22
    [64]=23 [78]=24 [82]=25 [84]=26 [91]=27 [118]=28 [121]=29 [139]=30 [249]=31 [26]=32
    [28]=33 [141]=34 [107]=35 [110]=36 [112]=37 [114]=38 [129]=39 [131]=40 [147]=41
    [149]=42
)
# Split-stream seeds stay under ctirouter_fuzz::SPLIT_STREAM_MAX.
split_max=1024

# write FILE HEX...: the hex strings, concatenated, as bytes.
write() {
    local file=$1
    shift
    printf '%s' "$@" | xxd -r -p >"$file"
}
hexbyte() { printf '%02x' "$1"; }

count=0
for tsv in "$vectors"/*.tsv; do
    base=$(basename "$tsv" .tsv)
    stream='' # all frames of the file back to back (bounded), for the stream targets
    # name<TAB>type<TAB>version<TAB>frame_hex, located by header name.
    while IFS=$'\t' read -r name type version hex; do
        [[ -n $hex ]] || continue
        seed="${base}-${name//[^A-Za-z0-9_]/_}"
        v=${version:-24}
        write "$corpus/split_stream/$seed" "$hex"
        write "$corpus/frame_decoder/$seed" "$(hexbyte $((v - 13)))" "$hex"
        for to in 13 19 20 24; do
            write "$corpus/routing_keys/$seed-to$to" \
                "$(hexbyte $(((v - 13) + 12 * (to - 13))))" "$hex"
        done
        if [[ -n ${request_index[$type]:-} ]]; then
            write "$corpus/request_decoders/$seed" \
                "$(hexbyte "${request_index[$type]}")" "${hex:16}"
        fi
        if ((${#stream} + ${#hex} <= 2 * split_max)); then
            stream+=$hex
            last_v=$v
        fi
        count=$((count + 1))
    done < <(awk -F'\t' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { printf "%s\t%s\t%s\t%s\n", $col["name"], $col["type"],
                 ("version" in col) ? $col["version"] : "", $col["frame_hex"] }' "$tsv")
    if [[ -n $stream ]]; then
        write "$corpus/split_stream/$base-stream" "$stream"
        write "$corpus/frame_decoder/$base-stream" "$(hexbyte $((last_v - 13)))" "$stream"
    fi
done

# Router requests the vectors have no sample of (protocol v24 bodies).
# MONITOR_START_REQ: InvokeID, PeripheralID, ConnectionCallID, CallMsgMask,
# AgentStateMask, ConnectionDeviceIDType, MonitoredDeviceType + CONNECTION_DEVID "5000".
write "$corpus/request_decoders/hand-MONITOR_START_REQ" 03 \
    00000001 00001388 0000004d ffffffff 000003ff 0001 0000 001900053530303000
write "$corpus/request_decoders/hand-MONITOR_STOP_REQ" 04 00000002 00000007
write "$corpus/request_decoders/hand-CHANGE_MONITOR_MASK_REQ" 05 \
    00000003 00000007 00000001 00000000
write "$corpus/request_decoders/hand-SESSION_MONITOR_START_REQ" 06 00000004 00000009
write "$corpus/request_decoders/hand-SESSION_MONITOR_STOP_REQ" 07 00000005 00000007
# OPEN_REQ at v24 (2-byte tags): ClientID "bridge", empty ClientPassword.
write "$corpus/request_decoders/hand-OPEN_REQ-v24" 00 \
    00000006 00000018 0000001e 00001388 00000010 ffffffff 000003ff 00000000 \
    00000000 00000000 00000000 0001000762726964676500 00020000

echo "wrote seeds for $count vector frames from $vectors into $corpus"
for t in "${targets[@]}"; do
    echo "  $t: $(find "$corpus/$t" -type f | wc -l) files"
done
