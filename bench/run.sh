#!/usr/bin/env bash
# The performance benchmark (targets in README, Benchmark): ingest vs the SQLite floor and vs a Python implementation of the guide,
# a poll with nothing new, peak memory, and (optionally) the per-account rate limit.
# See bench/README.md. Prints a table; exits 1 when a target is missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RECORDS=${BENCH_RECORDS:-200000}
REPEAT=${BENCH_REPEAT:-1}
ACCOUNTS=${BENCH_ACCOUNTS:-1000}
LATENCY_MS=${BENCH_LATENCY_MS:-50}
JOBS=${BENCH_JOBS:-4}
BIG=${BENCH_BIG:-0}
BIG_RECORDS=${BENCH_BIG_RECORDS:-1000000}
RATE=${BENCH_RATE:-0}
RATE_RECORDS=${BENCH_RATE_RECORDS:-15000}
RATE_LIMIT=${BENCH_RATE_LIMIT:-100}
STEPS=${BENCH_STEPS:-ingest,poll,pg-ingest,scale-out}
SCALE_ACCOUNTS=${BENCH_SCALE_ACCOUNTS:-300}
# The ingest and memory runs measure throughput, not the limiter: lift the per-account
# request limit (default 100/min, which alone would make 2,000 pages take 20 minutes).
INGEST_RATE_LIMIT=${BENCH_INGEST_RATE_LIMIT:-1000000}
# Optional PRAGMA wal_autocheckpoint for the floor (default: SQLite's default, 1000 pages).
FLOOR_CKPT=${BENCH_FLOOR_WAL_AUTOCHECKPOINT:-}

API_KEY=bench-api-key
BIN=$ROOT/target/release
TOOLS=(python3 "$ROOT/bench/tools.py")

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
calc() { python3 -c "print($1)"; }
fmt2() { python3 -c "print(f'{$1:.2f}')"; } # a ratio with two decimals
val() { sed -n "s/^$2=//p" "$1" | head -1; }
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

# ---------------------------------------------------------------- setup and cleanup

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/merge-sync-bench.XXXXXX")
PIDS=()
CMD_FD=
PGROOT=
cleanup() {
    local code=$?
    if [[ -n "$PGROOT" ]]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PGROOT"
    fi
    if [[ -n "$CMD_FD" ]]; then exec {CMD_FD}>&- || true; fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    log "building (cargo build --release --bins --examples)"
    cargo build --release --bins --examples >&2
fi
for b in merge-sync fake-merge examples/ingest_floor examples/bench_fake; do
    [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"
done
command -v python3 >/dev/null || die "python3 is needed"

ROWS=()   # "figure|measured|target|ratio|result"
FAILED=0
row() {
    ROWS+=("$1|$2|$3|$4|$5")
    [[ "$5" == PASS ]] || FAILED=1
}
verdict() { if [[ $(calc "1 if $1 else 0") == 1 ]]; then echo PASS; else echo FAIL; fi; }

# Waits for a fake to print its base URL as the first line of $1.
wait_url() {
    local out=$1 pid=$2 i
    for ((i = 0; i < 1200; i++)); do
        if [[ -s "$out" ]] && head -1 "$out" | grep -q '^http'; then
            head -1 "$out"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "the fake exited: $(cat "${out%.out}.err" 2>/dev/null)"
        sleep 0.1
    done
    die "the fake did not print its URL within 120 s"
}

# start_fake NAME SCENARIO [LATENCY_MS]: plain fake-merge; sets FAKE_URL and FAKE_PID.
start_fake() {
    local name=$1 scenario=$2 latency=${3:-0}
    "$BIN/fake-merge" --scenario "$scenario" --listen 127.0.0.1:0 --latency-ms "$latency" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    FAKE_URL=$(wait_url "$WORK/$name.out" "$FAKE_PID")
}

stop_fake() {
    kill "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
}

# start_logged_fake NAME SCENARIO [LATENCY_MS]: the bench_fake example (same fake, with a
# request log), driven through a FIFO; sets FAKE_URL, FAKE_PID, FAKE_OUT and CMD_FD.
start_logged_fake() {
    local name=$1 scenario=$2 latency=${3:-0}
    mkfifo "$WORK/$name.cmd"
    "$BIN/examples/bench_fake" --scenario "$scenario" --listen 127.0.0.1:0 \
        --latency-ms "$latency" <"$WORK/$name.cmd" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    exec {CMD_FD}>"$WORK/$name.cmd"
    FAKE_OUT=$WORK/$name.out
    FAKE_URL=$(wait_url "$FAKE_OUT" "$FAKE_PID")
}

# fake_cmd COMMAND: sends a command to the logged fake and waits for its answer.
fake_cmd() {
    local before i
    before=$(wc -l <"$FAKE_OUT")
    echo "$1" >&"$CMD_FD"
    for ((i = 0; i < 600; i++)); do
        if (($(wc -l <"$FAKE_OUT") > before)); then
            local reply
            reply=$(tail -1 "$FAKE_OUT")
            [[ "$reply" == ok* ]] || die "bench_fake: $reply"
            return 0
        fi
        sleep 0.1
    done
    die "bench_fake did not answer $1"
}

stop_logged_fake() {
    exec {CMD_FD}>&-
    CMD_FD=
    wait "$FAKE_PID" 2>/dev/null || true
}

# start_pg: a throwaway PostgreSQL cluster on a free 127.0.0.1 port from the installed server
# binaries (Debian's postgresql package), run as the postgres user when we are root, with
# the server's default durability. Sets PG_URL (append /DATABASE) and PSQL.
AS_PG=()
start_pg() {
    [[ -n "$PGROOT" ]] && return 0
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [[ -z "$PGBIN" ]] && command -v initdb >/dev/null; then
        PGBIN=$(dirname "$(readlink -f "$(command -v initdb)")")
    fi
    [[ -x "$PGBIN/initdb" && -x "$PGBIN/pg_ctl" ]] || die "no PostgreSQL server binaries (install Debian's postgresql)"
    PGROOT=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/merge-sync-bench-pg.XXXXXX")
    if [[ $(id -u) == 0 ]]; then
        chown postgres "$PGROOT"
        AS_PG=(runuser -u postgres --)
    fi
    local pass port
    pass=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$pass" | "${AS_PG[@]}" tee "$PGROOT/pw" >/dev/null
    (cd "$PGROOT" && "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -U postgres -A scram-sha-256 \
        --pwfile="$PGROOT/pw" -E UTF8 --no-locale -N --no-instructions >"$WORK/initdb.log" 2>&1) ||
        die "initdb failed: $(tail -5 "$WORK/initdb.log")"
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\nmax_connections = 100\n" \
        "$port" | "${AS_PG[@]}" tee -a "$PGROOT/data/postgresql.conf" >/dev/null
    (cd "$PGROOT" && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w start >/dev/null) ||
        die "PostgreSQL did not start: $(tail -5 "$PGROOT/server.log")"
    PG_URL="postgres://postgres:$pass@127.0.0.1:$port"
    PSQL=("$PGBIN/psql" -X -q -t -A)
    log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

createdb_pg() { "${PSQL[@]}" "$PG_URL/postgres" -c "CREATE DATABASE $1" >/dev/null; }
count_pg() { "${PSQL[@]}" "$PG_URL/$1" -c "SELECT count(*) FROM $2"; }

ms() { # merge-sync with the fake's URL and key
    MERGE_API_URL=$FAKE_URL MERGE_API_KEY=$API_KEY "$BIN/merge-sync" "$@"
}

# ---------------------------------------------------------------- 1. ingest (and 3. its memory)

if has_step ingest; then
    ACCT=bench-ingest-acct
    TOKEN=bench-ingest-token
    "${TOOLS[@]}" scenario-ingest "$RECORDS" "$API_KEY" "$ACCT" "$TOKEN" >"$WORK/ingest.json"
    log "ingest: starting fake-merge with $RECORDS generated hris.Employee records"
    start_fake ingest "$WORK/ingest.json"
    log "ingest: fake at $FAKE_URL"

    best_ms= best_floor= best_py= ms_rss= ms_cpu=
    for ((r = 1; r <= REPEAT; r++)); do
        db=$WORK/ingest-ms.db
        rm -rf "$db" "$db"-* "$db.locks"
        ms --db "$db" accounts add --account-token "$TOKEN" --category hris \
            --linked-account-id "$ACCT" >/dev/null
        log "ingest run $r/$REPEAT: merge-sync fetch"
        "${TOOLS[@]}" measure "$WORK/ms.txt" -- env MERGE_API_URL="$FAKE_URL" \
            MERGE_API_KEY="$API_KEY" "$BIN/merge-sync" --db "$db" fetch --account "$ACCT" \
            --rate-limit "$INGEST_RATE_LIMIT" 2>"$WORK/ms.err" || die "merge-sync fetch failed: $(cat "$WORK/ms.err")"
        n=$("${TOOLS[@]}" count "$db" hris_employee)
        [[ "$n" == "$RECORDS" ]] || die "merge-sync stored $n records, expected $RECORDS"
        w=$(val "$WORK/ms.txt" wall_s)
        log "  merge-sync: ${w}s, peak RSS $(val "$WORK/ms.txt" maxrss_kib) KiB, cpu $(val "$WORK/ms.txt" cpu_s)s"
        if [[ -z "$best_ms" || $(calc "1 if $w < $best_ms else 0") == 1 ]]; then
            best_ms=$w
            ms_cpu=$(val "$WORK/ms.txt" cpu_s)
        fi
        rss=$(val "$WORK/ms.txt" maxrss_kib)
        if [[ -z "$ms_rss" || "$rss" -gt "$ms_rss" ]]; then ms_rss=$rss; fi

        log "ingest run $r/$REPEAT: merge-sync export (CSV of the typed view)"
        "${TOOLS[@]}" measure "$WORK/export.txt" -- "$BIN/merge-sync" --db "$db" export \
            --model hris.Employee --include-deleted --output "$WORK/export.csv" \
            2>"$WORK/export.err" || die "merge-sync export failed: $(cat "$WORK/export.err")"
        rows=$(($(python3 -c "import csv,sys; csv.field_size_limit(1<<30); print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=''))))" "$WORK/export.csv") - 1))
        [[ "$rows" == "$RECORDS" ]] || die "export wrote $rows rows, expected $RECORDS"
        rss=$(val "$WORK/export.txt" maxrss_kib)
        log "  export: $(val "$WORK/export.txt" wall_s)s, peak RSS ${rss} KiB, $(stat -c %s "$WORK/export.csv") bytes"
        if [[ -z "${export_rss:-}" || "$rss" -gt "$export_rss" ]]; then export_rss=$rss; fi
        rm -f "$WORK/export.csv"
        rm -rf "$db" "$db"-* "$db.locks"

        log "ingest run $r/$REPEAT: floor (download untimed, then timed SQLite writes)"
        fdb=$WORK/ingest-floor.db
        rm -f "$fdb" "$fdb"-*
        "$BIN/examples/ingest_floor" --url "$FAKE_URL" --api-key "$API_KEY" \
            --account-token "$TOKEN" --category hris --path employees \
            --linked-account-id "$ACCT" --db "$fdb" \
            ${FLOOR_CKPT:+--wal-autocheckpoint "$FLOOR_CKPT"} >"$WORK/floor.txt"
        [[ $(val "$WORK/floor.txt" rows) == "$RECORDS" ]] || die "floor read $(val "$WORK/floor.txt" rows) rows"
        f=$(val "$WORK/floor.txt" floor_s)
        log "  floor: ${f}s (download took $(val "$WORK/floor.txt" download_s)s, untimed)"
        if [[ -z "$best_floor" || $(calc "1 if $f < $best_floor else 0") == 1 ]]; then best_floor=$f; fi
        rm -f "$fdb" "$fdb"-*

        log "ingest run $r/$REPEAT: Python guide implementation"
        pdb=$WORK/ingest-py.db
        rm -f "$pdb" "$pdb"-*
        "${TOOLS[@]}" measure "$WORK/py.txt" -- python3 "$ROOT/bench/guide_impl.py" \
            --url "$FAKE_URL" --api-key "$API_KEY" --account-token "$TOKEN" --category hris \
            --linked-account-id "$ACCT" --db "$pdb" >/dev/null
        n=$("${TOOLS[@]}" count "$pdb" hris_employee)
        [[ "$n" == "$RECORDS" ]] || die "the Python implementation stored $n records"
        p=$(val "$WORK/py.txt" wall_s)
        log "  python: ${p}s"
        if [[ -z "$best_py" || $(calc "1 if $p < $best_py else 0") == 1 ]]; then best_py=$p; fi
        rm -f "$pdb" "$pdb"-*
    done
    stop_fake

    ratio=$(fmt2 "$best_ms / $best_floor")
    row "ingest ${RECORDS} vs SQLite floor" "merge-sync ${best_ms}s (cpu ${ms_cpu}s), floor ${best_floor}s" \
        "<= 1.30x" "${ratio}x" "$(verdict "$ratio <= 1.30")"
    ratio=$(fmt2 "$best_py / $best_ms")
    row "ingest ${RECORDS} vs Python guide impl" "python ${best_py}s, merge-sync ${best_ms}s" \
        ">= 2.00x faster" "${ratio}x" "$(verdict "$ratio >= 2.0")"
    mib=$(calc "round($ms_rss / 1024, 1)")
    row "peak RSS, fetch of ${RECORDS}" "${mib} MiB" "< 50 MiB" "$(fmt2 "$mib / 50")x" \
        "$(verdict "$mib < 50")"
    mib=$(calc "round($export_rss / 1024, 1)")
    row "peak RSS, CSV export of ${RECORDS} rows" "${mib} MiB" "< 50 MiB" "$(fmt2 "$mib / 50")x" \
        "$(verdict "$mib < 50")"
fi

# ---------------------------------------------------------------- 2. poll with nothing new

if has_step poll; then
    "${TOOLS[@]}" scenario-poll "$ACCOUNTS" "$API_KEY" >"$WORK/poll.json"
    log "poll: starting the logged fake with $ACCOUNTS accounts, ${LATENCY_MS} ms per request"
    start_logged_fake poll "$WORK/poll.json" "$LATENCY_MS"
    db=$WORK/poll.db
    t0=$(date +%s.%N)
    if [[ "${BENCH_REGISTER_SQL:-0}" == 1 ]]; then
        # Create the schema with one CLI add, then insert the rest directly.
        ms --db "$db" accounts add --account-token tok-00001 --category hris \
            --linked-account-id acct-00001 >/dev/null
        "${TOOLS[@]}" register "$db" 2 "$ACCOUNTS"
    else
        for ((i = 1; i <= ACCOUNTS; i++)); do
            printf -v id '%05d' "$i"
            ms --db "$db" accounts add --account-token "tok-$id" --category hris \
                --linked-account-id "acct-$id" --end-user-origin-id "org-$id" >/dev/null
        done
    fi
    t1=$(date +%s.%N)
    log "poll: registered $ACCOUNTS accounts in $(calc "round($t1 - $t0, 1)")s"

    log "poll: baseline pass (untimed)"
    t0=$(date +%s.%N)
    ms --db "$db" poll --force --jobs "$JOBS" 2>"$WORK/poll-base.err" ||
        die "baseline poll failed: $(tail -5 "$WORK/poll-base.err")"
    t1=$(date +%s.%N)
    fake_cmd "log $WORK/poll-base.log"
    log "poll: baseline took $(fmt2 "$t1 - $t0")s; requests: $("${TOOLS[@]}" requests "$WORK/poll-base.log" | tr '\n' ' ')"
    fetched=$("${TOOLS[@]}" count "$db" hris_employee)
    [[ "$fetched" == $((ACCOUNTS * 5)) ]] || die "baseline stored $fetched records, expected $((ACCOUNTS * 5))"

    fake_cmd clear
    log "poll: timed pass with nothing new"
    "${TOOLS[@]}" measure "$WORK/poll.txt" -- env MERGE_API_URL="$FAKE_URL" MERGE_API_KEY="$API_KEY" \
        "$BIN/merge-sync" --db "$db" poll --force --jobs "$JOBS" 2>"$WORK/poll.err" ||
        die "poll failed: $(tail -5 "$WORK/poll.err")"
    fake_cmd "log $WORK/poll.log"
    stop_logged_fake
    "${TOOLS[@]}" requests "$WORK/poll.log" >"$WORK/poll-req.txt"
    log "poll: requests: $(tr '\n' ' ' <"$WORK/poll-req.txt")"
    requests=$(val "$WORK/poll-req.txt" total)
    wall=$(val "$WORK/poll.txt" wall_s)
    ideal=$(calc "round($requests * $LATENCY_MS / 1000 / $JOBS, 3)")
    ratio=$(fmt2 "$wall / $ideal")
    row "poll ${ACCOUNTS} accts, nothing new" \
        "${wall}s for ${requests} requests; ideal ${requests}x${LATENCY_MS}ms/${JOBS} = ${ideal}s" \
        "<= 1.30x" "${ratio}x" "$(verdict "$ratio <= 1.30")"
    if [[ "$requests" != "$ACCOUNTS" ]]; then
        log "poll: note: $requests requests for $ACCOUNTS accounts (expected one sync-status each)"
    fi
fi

# ---------------------------------------------------------------- 2b. ingest into PostgreSQL

if has_step pg-ingest; then
    start_pg
    ACCT=bench-ingest-acct
    TOKEN=bench-ingest-token
    "${TOOLS[@]}" scenario-ingest "$RECORDS" "$API_KEY" "$ACCT" "$TOKEN" >"$WORK/ingest.json"
    log "pg-ingest: starting fake-merge with $RECORDS generated hris.Employee records"
    start_fake pg-ingest "$WORK/ingest.json"
    best_pg= best_pgfloor=
    for ((r = 1; r <= REPEAT; r++)); do
        createdb_pg "ingest_ms_$r"
        url="$PG_URL/ingest_ms_$r?sslmode=disable"
        ms --db "$url" accounts add --account-token "$TOKEN" --category hris \
            --linked-account-id "$ACCT" >/dev/null
        log "pg-ingest run $r/$REPEAT: merge-sync fetch into PostgreSQL"
        "${TOOLS[@]}" measure "$WORK/pg-ms.txt" -- env MERGE_API_URL="$FAKE_URL" \
            MERGE_API_KEY="$API_KEY" "$BIN/merge-sync" --db "$url" fetch --account "$ACCT" \
            --rate-limit "$INGEST_RATE_LIMIT" 2>"$WORK/pg-ms.err" || die "merge-sync fetch failed: $(tail -5 "$WORK/pg-ms.err")"
        n=$(count_pg "ingest_ms_$r" hris_employee)
        [[ "$n" == "$RECORDS" ]] || die "merge-sync stored $n records in PostgreSQL, expected $RECORDS"
        w=$(val "$WORK/pg-ms.txt" wall_s)
        log "  merge-sync: ${w}s, peak RSS $(val "$WORK/pg-ms.txt" maxrss_kib) KiB, cpu $(val "$WORK/pg-ms.txt" cpu_s)s"
        if [[ -z "$best_pg" || $(calc "1 if $w < $best_pg else 0") == 1 ]]; then best_pg=$w; fi

        log "pg-ingest run $r/$REPEAT: floor (download untimed, then timed PostgreSQL writes)"
        createdb_pg "ingest_floor_$r"
        "$BIN/examples/ingest_floor" --url "$FAKE_URL" --api-key "$API_KEY" \
            --account-token "$TOKEN" --category hris --path employees \
            --linked-account-id "$ACCT" --postgres "$PG_URL/ingest_floor_$r" >"$WORK/pg-floor.txt"
        [[ $(val "$WORK/pg-floor.txt" rows) == "$RECORDS" ]] || die "floor read $(val "$WORK/pg-floor.txt" rows) rows"
        f=$(val "$WORK/pg-floor.txt" floor_s)
        log "  floor: ${f}s"
        if [[ -z "$best_pgfloor" || $(calc "1 if $f < $best_pgfloor else 0") == 1 ]]; then best_pgfloor=$f; fi
    done
    stop_fake
    ratio=$(fmt2 "$best_pg / $best_pgfloor")
    row "ingest ${RECORDS} into PostgreSQL vs its floor" "merge-sync ${best_pg}s, floor ${best_pgfloor}s" \
        "<= 1.50x" "${ratio}x" "$(verdict "$ratio <= 1.50")"
    if [[ -n "${best_ms:-}" ]]; then
        row "ingest ${RECORDS}: PostgreSQL vs SQLite (info)" "PostgreSQL ${best_pg}s, SQLite ${best_ms}s" \
            "-" "$(fmt2 "$best_pg / $best_ms")x" PASS
    fi
fi

# ---------------------------------------------------------------- 2c. scale-out on PostgreSQL

if has_step scale-out; then
    start_pg
    "${TOOLS[@]}" scenario-scale "$SCALE_ACCOUNTS" "$API_KEY" >"$WORK/scale.json"
    log "scale-out: logged fake with $SCALE_ACCOUNTS accounts x 3 models, ${LATENCY_MS} ms per request"
    start_logged_fake scale "$WORK/scale.json" "$LATENCY_MS"
    for setup in multi single; do
        createdb_pg "scale_$setup"
        url="$PG_URL/scale_$setup?sslmode=disable"
        for ((i = 1; i <= SCALE_ACCOUNTS; i++)); do
            printf -v id '%05d' "$i"
            ms --db "$url" accounts add --account-token "tok-$id" --category hris \
                --linked-account-id "acct-$id" >/dev/null
        done
        fake_cmd clear
        log "scale-out: $setup (first fetch of every account)"
        t0=$(date +%s.%N)
        if [[ "$setup" == multi ]]; then
            pids=()
            for p in 1 2 3; do
                ms --db "$url" poll --jobs 4 2>"$WORK/scale-$p.err" &
                pids+=($!)
            done
            for pid in "${pids[@]}"; do wait "$pid" || die "a poll failed: $(tail -5 "$WORK"/scale-*.err)"; done
        else
            ms --db "$url" poll --jobs 12 2>"$WORK/scale-single.err" || die "poll failed: $(tail -5 "$WORK/scale-single.err")"
        fi
        t1=$(date +%s.%N)
        fake_cmd "log $WORK/scale-$setup.log"
        "${TOOLS[@]}" requests "$WORK/scale-$setup.log" >"$WORK/scale-$setup-req.txt"
        requests=$(val "$WORK/scale-$setup-req.txt" total)
        expected=$((SCALE_ACCOUNTS * 4))
        [[ "$requests" == "$expected" ]] || die "$setup: $requests requests, expected $expected (each account exactly once)"
        for table in hris_employee hris_team hris_time_off_balance; do
            n=$(count_pg "scale_$setup" "$table")
            [[ "$n" -gt 0 ]] || die "$setup: nothing in $table"
        done
        wall=$(fmt2 "$t1 - $t0")
        ideal=$(calc "round($requests * $LATENCY_MS / 1000 / 12, 3)")
        ratio=$(fmt2 "$wall / $ideal")
        if [[ "$setup" == multi ]]; then
            row "scale-out: 3 polls x 4 jobs, ${SCALE_ACCOUNTS} accts x 3 models" \
                "${wall}s for ${requests} requests; ideal ${requests}x${LATENCY_MS}ms/12 = ${ideal}s" \
                "<= 1.30x" "${ratio}x" "$(verdict "$ratio <= 1.30")"
        else
            row "scale-out: 1 poll x 12 jobs (comparison)" "${wall}s for ${requests} requests" \
                "-" "${ratio}x" PASS
        fi
    done
    stop_logged_fake
fi

# ---------------------------------------------------------------- 3. peak memory, 1M records

if [[ "$BIG" == 1 ]]; then
    ACCT=bench-big-acct
    TOKEN=bench-big-token
    "${TOOLS[@]}" scenario-ingest "$BIG_RECORDS" "$API_KEY" "$ACCT" "$TOKEN" >"$WORK/big.json"
    log "big: starting fake-merge with $BIG_RECORDS records"
    start_fake big "$WORK/big.json"
    db=$WORK/big.db
    ms --db "$db" accounts add --account-token "$TOKEN" --category hris \
        --linked-account-id "$ACCT" >/dev/null
    log "big: merge-sync fetch of $BIG_RECORDS records"
    "${TOOLS[@]}" measure "$WORK/big.txt" -- env MERGE_API_URL="$FAKE_URL" MERGE_API_KEY="$API_KEY" \
        "$BIN/merge-sync" --db "$db" fetch --account "$ACCT" --rate-limit "$INGEST_RATE_LIMIT" \
        2>"$WORK/big.err" ||
        die "big fetch failed: $(tail -5 "$WORK/big.err")"
    stop_fake
    n=$("${TOOLS[@]}" count "$db" hris_employee)
    [[ "$n" == "$BIG_RECORDS" ]] || die "big fetch stored $n records"
    rm -rf "$db" "$db"-* "$db.locks"
    mib=$(calc "round($(val "$WORK/big.txt" maxrss_kib) / 1024, 1)")
    row "peak RSS, fetch of ${BIG_RECORDS}" "${mib} MiB (fetch took $(val "$WORK/big.txt" wall_s)s)" \
        "< 50 MiB" "$(fmt2 "$mib / 50")x" "$(verdict "$mib < 50")"
fi

# ---------------------------------------------------------------- 4. rate limit

if [[ "$RATE" == 1 ]]; then
    ACCT=bench-rate-acct
    TOKEN=bench-rate-token
    "${TOOLS[@]}" scenario-ingest "$RATE_RECORDS" "$API_KEY" "$ACCT" "$TOKEN" >"$WORK/rate.json"
    log "rate: fetching $RATE_RECORDS records with --rate-limit $RATE_LIMIT (takes over a minute)"
    start_logged_fake rate "$WORK/rate.json" 0
    db=$WORK/rate.db
    ms --db "$db" accounts add --account-token "$TOKEN" --category hris \
        --linked-account-id "$ACCT" >/dev/null
    "${TOOLS[@]}" measure "$WORK/rate.txt" -- env MERGE_API_URL="$FAKE_URL" MERGE_API_KEY="$API_KEY" \
        "$BIN/merge-sync" --db "$db" fetch --account "$ACCT" --rate-limit "$RATE_LIMIT" \
        2>"$WORK/rate.err" || die "rate fetch failed: $(tail -5 "$WORK/rate.err")"
    fake_cmd "log $WORK/rate.log"
    stop_logged_fake
    "${TOOLS[@]}" window "$WORK/rate.log" "$TOKEN" 60 >"$WORK/rate-win.txt"
    reqs=$(val "$WORK/rate-win.txt" requests)
    most=$(val "$WORK/rate-win.txt" max_in_window)
    ok="$most <= $RATE_LIMIT and $reqs > $RATE_LIMIT"
    row "rate limit ${RATE_LIMIT}/min" \
        "${reqs} requests over $(val "$WORK/rate-win.txt" span_s)s; busiest 60 s window: ${most}" \
        "<= ${RATE_LIMIT} per 60 s" "$(fmt2 "$most / $RATE_LIMIT")x" "$(verdict "$ok")"
fi

# ---------------------------------------------------------------- the table

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then rev="$rev+dirty"; fi
printf '\nmerge-sync benchmark (commit %s, %s, %s cores)\n\n' "$rev" "$(uname -sm)" \
    "$(nproc 2>/dev/null || echo '?')"
{
    echo "figure|measured|target|ratio|result"
    echo "------|--------|------|-----|------"
    for r in "${ROWS[@]}"; do echo "$r"; done
} | "${TOOLS[@]}" table
echo
exit "$FAILED"
