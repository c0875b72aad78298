#!/usr/bin/env bash
# Why this exists: the Dockerfile is only worth something if the image it
# builds works as a container user meets it. This builds the real Dockerfile
# with buildah (no Docker daemon or registry needed: local base images stand
# in for Docker Hub's, see build-base-images.sh), runs the image's
# entrypoint with the image's own user, environment and working directory,
# with host folders mounted at /data and /scripts, and checks what a user
# relies on: the token a 0.0.0.0 listener demands, OTLP ingest from the
# Python SDK, `qyl healthcheck`, reloading an edited script from the mounted
# folder, running as non-root, and a SIGTERM under load that stops within
# 10 s without losing an acknowledged span. It also builds and runs the
# demo app of docker-compose.yml against it.
#
# Usage: tests/docker/test.sh   (as root, on a machine with buildah and
# mmdebstrap; `make docker-test`). QYL_DOCKER_IMAGE names the image built;
# QYL_DOCKER_NO_CACHE=1 first deletes buildah's cached layers (every untagged
# image on this machine), to time a cold build;
# QYL_DOCKER_CONTEXT=DIR builds DIR (e.g. a `git archive` export) instead of
# this working tree.
# Single-quoted $ in buildah's Go templates is meant literally.
# shellcheck disable=SC2016
set -eEuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
context=${QYL_DOCKER_CONTEXT:-$repo}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
image=${QYL_DOCKER_IMAGE:-localhost/qyl:docker-test}
demo_image=localhost/qyl-demo-app:docker-test
python=${PYTHON:-$repo/.venv/bin/python}
token=docker-test-token-5f3a9c
buildah_opts=(--isolation chroot --network host)

work=$(mktemp -d /var/tmp/qyl-docker-test.XXXXXX)
passed=0
containers=()
background=()
cleanup() {
    local pid ctr
    for pid in "${background[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for ctr in "${containers[@]}"; do
        buildah rm "$ctr" >/dev/null 2>&1 || true
    done
    # A failed run leaves its logs, database and scripts for a look.
    if [ "$passed" = 1 ]; then
        rm -rf "$work"
    else
        printf 'logs, /data and /scripts of this run are in %s\n' "$work" >&2
    fi
}
trap cleanup EXIT
# A command failing outside a check still names the step it broke.
trap 'fail "line $LINENO: $BASH_COMMAND exited $?"' ERR

# ---- output -----------------------------------------------------------------
test_start=$(date +%s.%N)
step_start=
step_no=0
summary=()
step() {
    step_done
    step_no=$((step_no + 1))
    step_name=$*
    step_start=$(date +%s.%N)
    printf '\n==> [%d] %s\n' "$step_no" "$step_name"
}
step_done() {
    [ -n "$step_start" ] || return 0
    local secs
    secs=$(awk -v a="$step_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '    ok (%ss)\n' "$secs"
    summary+=("$(printf '%6ss  [%d] %s' "$secs" "$step_no" "$step_name")")
    step_start=
}
info() { printf '    %s\n' "$*"; }
fail() {
    trap - ERR
    printf '\nFAIL in step [%d] %s: %s\n' "$step_no" "${step_name:-}" "$*" >&2
    for log in "$work"/qyl-*.log; do
        [ -f "$log" ] || continue
        printf -- '--- last lines of %s\n' "$(basename "$log")" >&2
        tail -n 25 "$log" >&2
    done
    exit 1
}

# ---- helpers ----------------------------------------------------------------
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# api METHOD PATH [JSON]: the body of a REST call with the test's token; fails
# the test on a non-2xx answer.
api() {
    local method=$1 path=$2 body=${3:-}
    local args=(-sS --max-time 10 -X "$method" -H "Authorization: Bearer $token")
    [ -z "$body" ] || args+=(-H 'content-type: application/json' --data "$body")
    curl "${args[@]}" --fail-with-body "http://127.0.0.1:$http_port$path" || fail "$method $path failed"
}

# sql QUERY: the first column of the first row of POST /api/v1/sql.
sql() {
    api POST /api/v1/sql "$(jq -cn --arg q "$1" '{sql: $q}')" | jq -r '.rows[0][0]'
}

# wait_for SECONDS WHAT COMMAND...: retries COMMAND until it succeeds.
wait_for() {
    local deadline=$(($(date +%s) + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $what"
        sleep 0.2
    done
}

# The image's own run configuration, as `docker run` would apply it.
image_config() { buildah inspect --type image --format "$1" "$image"; }

# set_run MODE: run_env and run_mounts, the -e and -v flags of a run: the
# image's ENV, the host folders at /data and /scripts, the test's ports and
# token. MODE is without-token (ports as QYL_SERVER_*_PORT), with-token (the
# same plus QYL_AUTH_TOKEN) or config-file (QYL_AUTH_TOKEN, the ports in a
# qyl.toml mounted at /etc/qyl/qyl.toml, the image's working directory).
run_env=()
run_mounts=()
set_run() {
    run_env=()
    run_mounts=(-v "$work/data:/data" -v "$work/scripts:/scripts")
    local kv
    while IFS= read -r kv; do
        [ -n "$kv" ] && run_env+=(-e "$kv")
    done < <(image_config '{{range .OCIv1.Config.Env}}{{println .}}{{end}}')
    case $1 in
        without-token | with-token)
            run_env+=(-e "QYL_SERVER_HTTP_PORT=$http_port" -e "QYL_SERVER_OTLP_HTTP_PORT=$otlp_http_port"
                -e "QYL_SERVER_GRPC_PORT=$grpc_port")
            ;;
        config-file)
            printf '[server]\nhttp_port = %s\notlp_http_port = %s\ngrpc_port = %s\n' \
                "$http_port" "$otlp_http_port" "$grpc_port" >"$work/qyl.toml"
            run_mounts+=(-v "$work/qyl.toml:/etc/qyl/qyl.toml:ro")
            ;;
    esac
    [ "$1" = without-token ] || run_env+=(-e "QYL_AUTH_TOKEN=$token")
}

# new_container: a working container of the image, without its VOLUME
# declarations: for those, buildah run mounts an empty directory of its own,
# which (depending on mount order) can hide the test's -v at the same path,
# whereas docker run's -v replaces the volume.
new_container() {
    local ctr volume
    ctr=$(buildah from --quiet --pull=never "$image")
    for volume in $(image_config '{{range $v, $_ := .OCIv1.Config.Volumes}}{{$v}} {{end}}'); do
        buildah config --volume "$volume-" "$ctr"
    done
    echo "$ctr"
}

# start_qyl NAME MODE: runs ENTRYPOINT+CMD in a new container of the image
# as its USER in its WORKDIR, in the background, with set_run MODE; sets
# qyl_runner (the buildah process) and qyl_pid (qyl itself).
start_qyl() {
    local name=$1 ctr user workdir
    local -a command
    set_run "$2"
    ctr=$(new_container)
    containers+=("$ctr")
    user=$(image_config '{{.OCIv1.Config.User}}')
    workdir=$(image_config '{{.OCIv1.Config.WorkingDir}}')
    mapfile -t command < <(image_config '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}{{range .OCIv1.Config.Cmd}}{{println .}}{{end}}')
    qyl_log=$work/qyl-$name.log
    buildah run "${buildah_opts[@]}" --user "$user" --workingdir "$workdir" "${run_env[@]}" \
        "${run_mounts[@]}" "$ctr" -- "${command[@]}" >"$qyl_log" 2>&1 &
    qyl_runner=$!
    background+=("$qyl_runner")
    qyl_ctr=$ctr
    wait_for 60 "qyl to listen (${command[*]})" grep -q '^qyl listening' "$qyl_log"
    qyl_pid=$(find_qyl "$qyl_runner") || fail "no qyl process under buildah run $qyl_runner"
    info "started: $(grep '^qyl listening' "$qyl_log") (pid $qyl_pid, ${command[*]} as $user in $workdir)"
}

# find_qyl PID: the process named qyl among PID's descendants.
find_qyl() {
    local child
    for child in $(pgrep -P "$1"); do
        if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = qyl ]; then
            echo "$child"
            return 0
        fi
        find_qyl "$child" && return 0
    done
    return 1
}

# stop_qyl: SIGTERM to qyl (what `docker stop` sends to the container's
# process); sets stop_secs.
stop_qyl() {
    local t0 deadline
    t0=$(date +%s.%N)
    deadline=$(($(date +%s) + 30))
    kill -TERM "$qyl_pid"
    while kill -0 "$qyl_pid" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "qyl still running 30 s after SIGTERM"
        sleep 0.05
    done
    stop_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    wait "$qyl_runner" || true
    buildah rm "$qyl_ctr" >/dev/null
}

# in_qyl ARGS...: runs a command in the image with the user, environment,
# mounts and working directory of the running qyl (a `docker exec`
# stand-in), returning its exit code.
in_qyl() {
    local ctr rc=0
    ctr=$(new_container)
    buildah run "${buildah_opts[@]}" --user "$(image_config '{{.OCIv1.Config.User}}')" \
        --workingdir "$(image_config '{{.OCIv1.Config.WorkingDir}}')" "${run_env[@]}" "${run_mounts[@]}" \
        "$ctr" -- "$@" || rc=$?
    buildah rm "$ctr" >/dev/null
    return "$rc"
}

# function_description NAME: the description /api/v1/functions lists for NAME.
function_description() {
    api GET /api/v1/functions | jq -r --arg n "$1" '.functions[] | select(.name == $n) | .description'
}
description_is() { [ "$(function_description "$1")" = "$2" ]; }

lua_function() {
    cat <<EOF
return qyl.fn {
  name = "docker-reload",
  description = "$1",
  trigger = { on = "span", where = { service = "py-http" } },
  handler = function(span) return "$1 " .. span.name end,
}
EOF
}

for tool in buildah mmdebstrap curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ -x "$python" ] || fail "$python missing: run \`make venv\`"
[ "$(id -u)" = 0 ] || fail "buildah's chroot isolation needs root"

# ---- 1. base images ---------------------------------------------------------
step "local stand-ins for the Dockerfiles' base images"
"$here/build-base-images.sh"

# ---- 2. build ---------------------------------------------------------------
step "buildah bud of the Dockerfile"
build_log=$work/build.log
build_opts=(--layers --force-rm --pull=never --format docker)
# A cold build starts without the cached layers. Not `bud --no-cache`: that
# adds a second chain of layers beside the first, and later builds may follow
# the wrong one and miss the cache.
if [ "${QYL_DOCKER_NO_CACHE:-0}" = 1 ]; then
    buildah rmi --prune >/dev/null
    info "removed the cached layers"
fi
if ! buildah bud "${buildah_opts[@]}" "${build_opts[@]}" \
    -t "$image" -f "$context/Dockerfile" "$context" >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    fail "the image did not build (full log above)"
fi
cached=$(grep -c '^--> Using cache' "$build_log" || true)
compiles=$(grep -E '^\s+Finished .release' "$build_log" | sed 's/.* in //' | paste -sd, - || true)
info "$cached steps from cache; cargo builds (dependencies, qyl; only those not cached): ${compiles:-none}"
image_size=$(buildah images --format '{{.Size}}' "$image")
info "image $image ($context): $image_size"

step "the image's run configuration"
user=$(image_config '{{.OCIv1.Config.User}}')
[ "$user" = 10001:10001 ] || fail "USER is '$user', expected 10001:10001"
entrypoint=$(image_config '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}| {{range .OCIv1.Config.Cmd}}{{.}} {{end}}')
[ "$entrypoint" = 'qyl | serve ' ] || fail "ENTRYPOINT | CMD are '$entrypoint', expected 'qyl | serve '"
[ "$(image_config '{{.OCIv1.Config.StopSignal}}')" = SIGTERM ] || fail "STOPSIGNAL is not SIGTERM"
ports=$(image_config '{{range $p, $_ := .OCIv1.Config.ExposedPorts}}{{$p}} {{end}}')
for port in 4317/tcp 4318/tcp 5100/tcp; do
    [[ " $ports" == *" $port "* ]] || fail "port $port is not exposed ($ports)"
done
[ "$(image_config '{{range $v, $_ := .OCIv1.Config.Volumes}}{{$v}}{{end}}')" = /data ] || fail "VOLUME is not /data"
healthcheck=$(image_config '{{range .Docker.Config.Healthcheck.Test}}{{.}} {{end}}')
[ "$healthcheck" = 'CMD qyl healthcheck ' ] || fail "HEALTHCHECK is '$healthcheck'"
env=$(image_config '{{range .OCIv1.Config.Env}}{{println .}}{{end}}')
for kv in QYL_SERVER_BIND=0.0.0.0 QYL_STORAGE_PATH=/data/qyl.duckdb QYL_FUNCTIONS_DIR=/scripts; do
    grep -qx "$kv" <<<"$env" || fail "ENV lacks $kv"
done
info "user $user, $entrypoint, ports $ports, healthcheck $healthcheck"

# ---- 3. run -----------------------------------------------------------------
mkdir -p "$work/data" "$work/scripts"
# What a user does for bind mounts: give them to the image's uid.
chown 10001:10001 "$work/data" "$work/scripts"
http_port=$(free_port)
otlp_http_port=$(free_port)
grpc_port=$(free_port)
dead_port=$(free_port)
export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$token"

step "without QYL_AUTH_TOKEN: bound to 0.0.0.0, qyl generates a token and logs it"
start_qyl no-token without-token
wait_for 10 "the generated token's log line" grep -q 'generated one for this run' "$qyl_log"
generated=$(grep -o '?t=[0-9a-f]*' "$qyl_log" | head -n 1 | cut -c4-)
[ ${#generated} -eq 64 ] || fail "no token in the log"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/api/v1/functions")
[ "$code" = 401 ] || fail "the API answered $code without a token"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $generated" "http://127.0.0.1:$http_port/api/v1/functions")
[ "$code" = 200 ] || fail "the API answered $code with the logged token"
info "log: $(grep -o 'Log in at [^ ]*' "$qyl_log" | sed 's/?t=.*/?t=<token>/')"
info "without a token: 401; with the logged token: 200"
stop_qyl

step "start with QYL_AUTH_TOKEN, data and scripts mounted from the host"
start_qyl main with-token
grep -q 'generated one' "$qyl_log" && fail "qyl generated a token although QYL_AUTH_TOKEN was set"

step "qyl healthcheck inside the container: 0 when ready, 1 for a dead port"
said=$(in_qyl qyl healthcheck 2>&1) || fail "qyl healthcheck exited $? against a running qyl: $said"
info "ready: exit 0, printed '$(grep -v -e '^subprocess' -e '^Error:' <<<"$said")'"
rc=0
said=$(in_qyl qyl healthcheck --url "http://127.0.0.1:$dead_port" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "qyl healthcheck exited $rc for a dead port, expected 1: $said"
info "dead port: exit 1, printed '$(grep '^qyl healthcheck' <<<"$said" | cut -c1-110)…'"

step "runs as non-root"
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$qyl_pid/status")
[ "$uid" = 10001 ] || fail "qyl runs as uid $uid"
owners=$(stat -c '%u:%g %n' "$work/data"/* | sed "s#$work/##" | paste -sd, -)
stat -c '%u' "$work/data"/* | grep -qvx 10001 && fail "files in /data not owned by 10001: $owners"
info "process uid $uid; /data: $owners"

step "ingest from the OpenTelemetry Python SDK (OTLP/HTTP and gRPC) on the host"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_http_port" "$python" "$repo/tests/py/send_otlp.py" http >/dev/null ||
    fail "the SDK's OTLP/HTTP export failed"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port" OTEL_EXPORTER_OTLP_INSECURE=true \
    "$python" "$repo/tests/py/send_otlp.py" grpc >/dev/null || fail "the SDK's OTLP/gRPC export failed"
spans_http=$(sql "SELECT count(*) FROM spans WHERE service_name = 'py-http'")
spans_grpc=$(sql "SELECT count(*) FROM spans WHERE service_name = 'py-grpc'")
logs=$(sql "SELECT count(*) FROM logs")
if [ "$spans_http" -eq 0 ] || [ "$spans_grpc" -eq 0 ] || [ "$logs" -eq 0 ]; then
    fail "stored spans http=$spans_http grpc=$spans_grpc logs=$logs"
fi
info "stored: $spans_http spans over HTTP, $spans_grpc over gRPC, $logs log records"

step "a Lua function saved into the mounted /scripts loads and reloads"
script=$work/scripts/docker-reload.lua
lua_function v1 >"$script"
wait_for 10 "the new file's function" description_is docker-reload v1
info "new file: v1 listed"
# In place, as `echo >`, nano or VS Code's default save do: truncate, write.
lua_function v2 >"$script"
wait_for 10 "the in-place edit" description_is docker-reload v2
info "written in place: v2 listed"
# Temp file renamed over the original, as vim, JetBrains or sed -i save.
lua_function v3 >"$work/scripts/.docker-reload.lua.tmp"
mv "$work/scripts/.docker-reload.lua.tmp" "$script"
wait_for 10 "the rename-over save" description_is docker-reload v3
info "temp file renamed over it: v3 listed"
errors=$(api GET /api/v1/functions | jq -c '.load_errors')
[ "$errors" = '[]' ] || fail "load errors: $errors"

step "SIGTERM under load: stops within 10 s, every acknowledged span kept"
progress=$work/load-progress.json
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_http_port" \
    "$python" "$here/otlp_load.py" docker-load "$progress" >"$work/load-result.json" 2>"$work/load.log" &
loader=$!
background+=("$loader")
acked_at_least() { [ "$(jq -r .acknowledged "$progress" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 60 "2000 acknowledged spans" acked_at_least 2000
stop_qyl
grep -q 'stopped' "$qyl_log" || fail "qyl's log does not end with 'stopped'"
awk -v s="$stop_secs" 'BEGIN { exit !(s < 10) }' || fail "qyl took ${stop_secs}s to stop after SIGTERM"
wait "$loader" || fail "the load generator failed: $(tail -n 5 "$work/load.log")"
acknowledged=$(jq -r .acknowledged "$work/load-result.json")
attempted=$(jq -r .attempted "$work/load-result.json")
info "qyl exited ${stop_secs}s after SIGTERM; the SDK had $acknowledged spans acknowledged of $attempted sent"

step "restart on the same /data, ports from a qyl.toml mounted at /etc/qyl: the acknowledged spans are there"
http_port=$(free_port)
otlp_http_port=$(free_port)
grpc_port=$(free_port)
start_qyl restart config-file
grep -q "^qyl listening http=0.0.0.0:$http_port " "$qyl_log" || fail "qyl did not take its port from /etc/qyl/qyl.toml"
said=$(in_qyl qyl healthcheck 2>&1) || fail "qyl healthcheck did not find the port in /etc/qyl/qyl.toml: $said"
stored=$(sql "SELECT count(*) FROM spans WHERE service_name = 'docker-load'")
[ "$stored" -ge "$acknowledged" ] || fail "only $stored of $acknowledged acknowledged spans were stored"
[ "$stored" -le "$attempted" ] || fail "$stored spans stored, more than the $attempted sent"
[ "$(sql "SELECT count(*) FROM spans WHERE service_name = 'py-http'")" = "$spans_http" ] ||
    fail "the first run's spans changed across the restart"
wait_for 10 "the script after the restart" description_is docker-reload v3
info "stored $stored spans of docker-load (acknowledged $acknowledged, sent $attempted); earlier data and the script are back"

# ---- 4. the compose demo app ------------------------------------------------
step "examples/demo-app: build and send to qyl"
if ! buildah bud "${buildah_opts[@]}" "${build_opts[@]}" \
    -t "$demo_image" "$context/examples/demo-app" >"$work/demo-build.log" 2>&1; then
    tail -n 30 "$work/demo-build.log" >&2
    fail "the demo app image did not build"
fi
demo=$(buildah from --quiet --pull=never "$demo_image")
containers+=("$demo")
buildah run "${buildah_opts[@]}" --user "$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$demo_image")" \
    -e "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$otlp_http_port" \
    -e "OTEL_EXPORTER_OTLP_HEADERS=$OTEL_EXPORTER_OTLP_HEADERS" \
    -e DEMO_ITERATIONS=5 -e DEMO_INTERVAL_SECONDS=0.1 \
    "$demo" -- python app.py >"$work/demo-run.log" 2>&1 || fail "the demo app failed: $(tail -n 20 "$work/demo-run.log")"
demo_calls=$(sql "SELECT count(*) FROM spans WHERE service_name = 'demo-app' AND name LIKE 'chat %'")
demo_logs=$(sql "SELECT count(*) FROM logs WHERE service_name = 'demo-app'")
[ "$demo_calls" = 5 ] || fail "the demo app's 5 GenAI calls arrived as $demo_calls spans"
[ "$demo_logs" = 5 ] || fail "the demo app's 5 log records arrived as $demo_logs"
info "$(tail -n 1 "$work/demo-run.log"); qyl stored $demo_calls GenAI spans and $demo_logs logs"
stop_qyl

step_done
passed=1
total=$(awk -v a="$test_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
printf '\n==> docker test passed in %ss; image %s is %s\n' "$total" "$image" "$image_size"
printf '%s\n' "${summary[@]}"
