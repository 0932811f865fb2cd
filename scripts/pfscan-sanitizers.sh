#!/usr/bin/env bash
# Run the compiled-scanner tests against an AddressSanitizer + UBSan build of _pfscan.c.
# The sanitized module is built in a temporary directory and put first on the import path
# (the installed one is not touched). Usage: bash scripts/pfscan-sanitizers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=${PYTHON:-python3}
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
mkdir -p "$tmp/mailwarden/logs"
# PFSCAN_EXTRA_CFLAGS=-U__SSE2__ builds the portable code paths (what a machine without SSE2,
# e.g. aarch64, runs) instead of the SSE2 ones.
gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer ${PFSCAN_EXTRA_CFLAGS:-} -I"$inc" \
    src/mailwarden/logs/_pfscan.c -o "$tmp/_pfscan$suffix"
# a package overlay: mailwarden.logs._pfscan resolves to the sanitized build
cat > "$tmp/sitecustomize.py" <<PY
import importlib.machinery, importlib.util, sys
spec = importlib.util.spec_from_file_location("mailwarden.logs._pfscan", "$tmp/_pfscan$suffix")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["mailwarden.logs._pfscan"] = module
PY
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0,abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1,halt_on_error=1
export PYTHONPATH="$tmp${PYTHONPATH:+:$PYTHONPATH}" MAILWARDEN_REQUIRE_PFSCAN=1
"$py" -c "from mailwarden.logs import columnar_postfix as c; assert c._pfscan.__file__.startswith('$tmp'); print('sanitized:', c._pfscan.__file__)"
# --capture=sys: a sanitizer's report (written to fd 2) shows; pytest's fd capture would
# swallow it with the process it halts
"$py" -m pytest -q -p no:cacheprovider --capture=sys tests/unit/logs/test_pfscan.py "$@"
