#!/usr/bin/env bash
# Performs the Dockerfile's steps without a Docker engine: a clean build directory
# (npm ci, build, prune), a runtime directory with only what the image copies, a start with
# the image's environment, and a check that /readyz answers. Exits non-zero on any failure.
# Reuses the npm cache (~/.npm), as a Docker layer cache would.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kmaplab-mirror.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build stage in $work/build"
mkdir -p "$work/build" "$work/app" "$work/data"
cd "$repo"
cp package.json package-lock.json tsconfig.json tsconfig.build.json "$work/build/"
cp -r src "$work/build/src"
cd "$work/build"
npm ci --no-audit --no-fund --prefer-offline --loglevel=error
npm run build --silent
npm prune --omit=dev --no-audit --no-fund --loglevel=error

echo "== runtime stage in $work/app"
cp -r node_modules dist "$work/app/"
cp "$repo/package.json" "$repo/openapi.yaml" "$work/app/"
cp -r "$repo/migrations" "$work/app/migrations"
cp -r "$repo/web" "$work/app/web"

port=${MIRROR_PORT:-$((20000 + RANDOM % 20000))}
cd "$work/app"
NODE_ENV=production HOST=0.0.0.0 PORT=$port KMAPLAB_DB="$work/data/kmaplab.db" \
  KMAPLAB_TOKENS="mirror=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  node dist/server.js >"$work/server.log" 2>&1 &
pid=$!

# The image's HEALTHCHECK command, verbatim.
check="fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
for _ in $(seq 1 50); do
  if PORT=$port node -e "$check"; then
    echo "== /readyz answered 200 on port $port"
    # The image must carry everything the server serves, the dashboard included.
    dash="fetch('http://127.0.0.1:'+process.env.PORT+'/').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
    PORT=$port node -e "$dash" || { echo "the dashboard at / did not answer 200"; cat "$work/server.log"; kill -TERM "$pid"; exit 1; }
    echo "== / (dashboard) answered 200"
    kill -TERM "$pid"
    wait "$pid" && echo "== SIGTERM: clean exit" && pid= && exit 0
    echo "server exited non-zero after SIGTERM"; cat "$work/server.log"; exit 1
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
echo "server did not become ready:"; cat "$work/server.log"; exit 1
