#!/usr/bin/env bash
# The GPU check's wheelhouse: exactly the packages the lent GPU machine's image lacks (Axolotl 0.19,
# TRL 1.9, datasets and what they import at run time; lists: scripts/gpu/wheels.txt and, built
# here from source, scripts/gpu/source-wheels.txt), as Python 3.12
# manylinux x86_64 wheels without their dependencies, into .gpu-wheels/ (git-ignored). That machine
# has no network and takes at most 64 MiB with the working tree, so this fails above 60 MiB.
#
#   bash scripts/gpu-wheels.sh            then: run scripts/gpu-check.sh there, carrying .gpu-wheels
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${GPU_WHEELS:-.gpu-wheels}
LIMIT_MIB=60
staging="$WHEELS.partial"
rm -rf "$staging"
mkdir -p "$staging"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$staging" -r scripts/gpu/wheels.txt 2> >(grep -v "^WARNING: Location" >&2)
python3 -m pip wheel -q --no-deps -w "$staging" -r scripts/gpu/source-wheels.txt 2> >(grep -v "^WARNING: Location" >&2)
# `NAME==VERSION  # drop: GLOB ...`: that wheel without the files it does not need there
grep -E '# drop:' scripts/gpu/wheels.txt | while read -r spec _ _ globs; do
    name=$(echo "${spec%%[=<>]*}" | tr '-' '_')
    # shellcheck disable=SC2086  # the globs are words, for slim_wheel.py to match
    python3 scripts/gpu/slim_wheel.py "$(ls "$staging"/"$name"-*.whl)" $globs
done
size_kib=$(du -sk "$staging" | cut -f1)
count=$(ls "$staging"/*.whl | wc -l)
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "error: the wheelhouse is $((size_kib / 1024)) MiB ($count wheels), over its $LIMIT_MIB MiB limit" \
         "(the GPU machine takes 64 MiB with the working tree). The largest:" >&2
    ls -S -s -k "$staging" | sed -n 2,6p >&2
    echo "fix: drop what \`axolotl train\` does not import from scripts/gpu/wheels.txt" >&2
    rm -rf "$staging"
    exit 1
fi
rm -rf "$WHEELS"
mv "$staging" "$WHEELS"
echo "==> $WHEELS: $count wheels, $((size_kib / 1024)) MiB (limit $LIMIT_MIB)"
