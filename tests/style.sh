#!/bin/sh
#
# style.sh -- the mechanical part of the code style (docs: STYLE.md,
# recommendation 22): no line over 80 columns, no tabs, no trailing
# spaces in the C sources of core/, modules/ and plugins/.  Prints
# file:line: problem for every violation and exits 1 if there was one.
#
# Run from the top of the tree (make style, make unit).  Columns are
# counted in characters, not bytes, so UTF-8 in comments is fine.

cd "$(dirname "$0")/.." || exit 2

files=$(find core modules plugins -type f \( -name '*.c' -o -name '*.h' \) \
        2>/dev/null | LC_ALL=C sort)

[ -n "$files" ] || exit 0

# shellcheck disable=SC2086
LC_ALL=C awk '
    {
        line = $0
        # drop UTF-8 continuation bytes so that length() counts characters
        gsub(/[\200-\277]/, "", line)
        if (length(line) > 80) {
            printf "%s:%d: line is %d columns (max 80)\n",
                   FILENAME, FNR, length(line)
            bad = 1
        }
        if (index($0, "\t") > 0) {
            printf "%s:%d: tab character\n", FILENAME, FNR
            bad = 1
        }
        if ($0 ~ /[ \t\r]$/) {
            printf "%s:%d: trailing whitespace\n", FILENAME, FNR
            bad = 1
        }
    }
    END { exit bad }
' $files
