#!/bin/sh
# abi/check.sh -- the ABI check of make abi-check (issue #11): compare
# the public interface of objs/postern (the functions and types of
# core/postern_module.h; the header exports them with a visibility
# pragma, everything else is built -fvisibility=hidden) with the
# baseline of the last release, abi/postern-MAJOR.MINOR.abi, and fail
#   - on an incompatible change (anything but new functions, new fields
#     at the end of pst_module_t, a new phase before PST_PHASE_MAX:
#     abi/postern.suppr) while POSTERN_ABI_MAJOR is the baseline's;
#   - on any change at all, additions included, while
#     POSTERN_ABI_MAJOR.MINOR is still the baseline's version.
# Usage: sh abi/check.sh [BINARY [HEADER [BASELINE]]]
# A release: abidw --no-corpus-path --header-file core/postern_module.h
# objs/postern > abi/postern-X.Y.abi, drop the old baseline.
set -u

bin=${1:-objs/postern}
hdr=${2:-core/postern_module.h}
base=${3:-$(ls abi/postern-*.abi | sort -V | tail -n 1)}

command -v abidiff >/dev/null || {
    echo "abi-check: abidiff not found (apt-get install abigail-tools)" >&2
    exit 1
}

ver() { sed -n "s/^#define POSTERN_ABI_$1 *\([0-9]*\).*/\1/p" "$hdr"; }
major=$(ver MAJOR)
minor=$(ver MINOR)
bver=$(basename "$base" .abi | sed 's/^postern-//')
bmajor=${bver%.*}
bminor=${bver#*.}

if [ "$major" != "$bmajor" ]; then
    echo "abi-check: ABI $major.$minor, baseline $bver: a new major," \
         "nothing to compare (commit a baseline for $major.0 at release)"
    exit 0
fi

if [ "$minor" -lt "$bminor" ]; then
    echo "abi-check: ABI $major.$minor is older than the baseline $bver" >&2
    exit 1
fi

out=$(abidiff --no-added-syms --suppressions abi/postern.suppr \
      --hf2 "$hdr" "$base" "$bin")
rc=$?
if [ $rc -ne 0 ]; then
    echo "$out" >&2
    echo "abi-check: an incompatible change against ABI $bver (abidiff" \
         "$rc) without a major bump (POSTERN_ABI_MAJOR is $major);" \
         "see docs/PLUGINS.md \"The ABI promise\"" >&2
    exit 1
fi

out=$(abidiff --hf2 "$hdr" "$base" "$bin")
rc=$?
if [ $rc -ne 0 ] && [ "$minor" = "$bminor" ]; then
    echo "$out" >&2
    echo "abi-check: the interface changed against ABI $bver (abidiff $rc)" \
         "but POSTERN_ABI_MINOR is still $minor: an addition bumps it" >&2
    exit 1
fi

echo "abi-check: ABI $major.$minor compatible with the baseline $bver"
