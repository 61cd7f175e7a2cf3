#!/usr/bin/env bash
# A fuzz campaign over mien's parsers (`make fuzz`): each libFuzzer target of tests/fuzz/ runs
# for FUZZ_SECONDS (default 60) on its corpus in build-fuzz/corpus/T, seeded from the committed
# corpus (tests/fuzz/corpus/T), the crash inputs of ../shared/data/fuzz/T, and real files:
# photos of the shared data, the fetched models, the ONNX test networks, a checkpoint and a
# gallery export made on the spot. Findings land in build-fuzz/crashes/T/; commit each one
# (minimised: build-fuzz/fuzz_T -minimize_crash=1 FILE) into tests/fuzz/corpus/T/ once fixed,
# so that `make test` replays it for ever. A line per target goes to out/fuzz/summary.tsv (FUZZ_SUMMARY):
# target, seconds, executions, executions/s, corpus size, findings.
#
#   make fuzz                                   # every target, 60 s each
#   FUZZ_SECONDS=1800 FUZZ_TARGETS="onnx http" make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
S=${FUZZ_SECONDS:-60}
T=${FUZZ_TARGETS:-image onnx tfjs tflite faceapi ckpt gallery http video}
DATA=${MIEN_DATA:-../shared/data}
MODELS=${MIEN_MODELS:-models}
FZ=build-fuzz
SUMMARY=${FUZZ_SUMMARY:-out/fuzz/summary.tsv}
SEP=$'\n--mien-weights--\n'
mkdir -p out/fuzz

# A model whose JSON and weights travel as one input: JSON, the separator, the weights.
pack() { { cat "$1"; printf '%s' "$SEP"; cat "$2"; } > "$3"; }

seeds() {
    local t=$1 d=$FZ/seeds/$1
    rm -rf "$d"; mkdir -p "$d"
    case $t in
    image)
        cp "$DATA"/people/examples/obama_small.jpg "$DATA"/people/examples/obama-240p.jpg "$d"/ 2>/dev/null || true
        find "$DATA"/people "$DATA"/dlib_faces -name '*.png' -size -300k -exec cp {} "$d"/ \; 2>/dev/null || true
        find "$DATA"/lfw -name '*_0001.jpg' 2>/dev/null | head -20 | xargs -r cp -t "$d"/ || true ;;
    onnx)
        cp "$MODELS"/faceplugin/fr_age.onnx "$MODELS"/faceplugin/fr_eye.onnx "$MODELS"/faceplugin/fr_gender.onnx "$d"/ 2>/dev/null || true
        cp build-asan/onnx-tests/*.onnx "$d"/ 2>/dev/null || true ;;
    tfjs)
        for m in blazeface-front liveness emotion age gender; do
            [ -f "$MODELS/human/$m.json" ] && pack "$MODELS/human/$m.json" "$MODELS/human/$m.bin" "$d/$m"
        done ;;
    tflite)
        cp "$MODELS"/expo/*.tflite "$d"/ 2>/dev/null || true
        /usr/bin/python3 tools/tflite_make_tests.py "$FZ/tflite-synth" >/dev/null 2>&1 &&
            cp "$FZ"/tflite-synth/*.tflite "$d"/ || true ;;
    faceapi)
        for m in face_landmark_68_tiny_model face_landmark_68_model face_recognition_model ssd_mobilenetv1_model; do
            f=$MODELS/faceapi/$m-weights_manifest.json
            [ -f "$f" ] && pack "$f" "$MODELS/faceapi/$m.bin" "$d/$m"
        done ;;
    ckpt)
        # One real checkpoint: the small network, two steps on the known people.
        if [ -x build/mien ] && [ -d "$DATA/people/examples/knn_examples/train" ]; then
            build/mien train --data "$DATA/people/examples/knn_examples/train" --arch small \
                --steps 2 --batch 4 --out "$FZ/seed.ckpt" >/dev/null 2>&1 && cp "$FZ/seed.ckpt" "$d"/ || true
        fi ;;
    gallery)
        if [ -x build/mien ]; then
            rm -f "$FZ"/seed-gallery.db*
            build/mien enroll --gallery "$FZ/seed-gallery.db" --from-dir "$DATA/people/examples/knn_examples/train" >/dev/null 2>&1 &&
                build/mien export --gallery "$FZ/seed-gallery.db" "$d/people.jsonl" >/dev/null 2>&1 || true
        fi ;;
    http)
        f=$DATA/people/examples/obama_small.jpg
        if [ -f "$f" ]; then
            { printf '\x00\x00--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
              cat "$f"; printf '\r\n--XyZ--\r\n'; } > "$d/detect-obama"
            { printf '\x03\x02'; cat "$f"; } > "$d/identify-obama"
        fi ;;
    esac
}

max_len() {
    case $1 in
    onnx) echo 400000 ;; tfjs|faceapi) echo 8000000 ;; tflite) echo 6000000 ;; ckpt) echo 4000000 ;;
    image|video) echo 65536 ;; *) echo 16384 ;;
    esac
}

printf 'target\tseconds\texecutions\texec_per_s\tcorpus\tfindings\n' > "$SUMMARY"
for t in $T; do
    [ -x "$FZ/fuzz_$t" ] || { echo "fuzz: $FZ/fuzz_$t missing (make fuzz-build)" >&2; exit 2; }
    seeds "$t"
    mkdir -p "$FZ/corpus/$t" "$FZ/crashes/$t"
    echo "fuzz: $t for $S s" >&2
    log=out/fuzz/$t.log
    # -fork keeps a campaign going past a finding (each finding is saved, then the next child
    # starts); the final stats come from the parent.
    set +e
    MIEN_MODELS=$MODELS "$FZ/fuzz_$t" -max_total_time="$S" -timeout=60 -rss_limit_mb=3000 \
        -max_len="$(max_len "$t")" -print_final_stats=1 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -artifact_prefix="$FZ/crashes/$t/" "$FZ/corpus/$t" "tests/fuzz/corpus/$t" \
        "$FZ/seeds/$t" $( [ -d "$DATA/fuzz/$t" ] && echo "$DATA/fuzz/$t" ) > "$log" 2>&1
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#' || echo 0)
    # crash-, leak-, oom- and timeout- files are findings; slow-unit- files only say an input
    # took over 10 s (large real models under ASan on a busy machine).
    found=$(find "$FZ/crashes/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
            -o -name 'timeout-*' \) | wc -l)
    corpus=$(find "$FZ/corpus/$t" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$S" "${execs:-0}" "$(( ${execs:-0} / S ))" "$corpus" "$found" >> "$SUMMARY"
done
column -t "$SUMMARY"
if [ "$(awk 'NR > 1 && $6 > 0' "$SUMMARY" | wc -l)" -gt 0 ]; then
    echo "fuzz: findings in $FZ/crashes/ (see out/fuzz/*.log)" >&2
    exit 1
fi
