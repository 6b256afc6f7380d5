# kmaplab lab server. Build: docker build -t kmaplab .
# Run:   docker run -p 3000:3000 -v kmaplab-data:/data -e KMAPLAB_TOKENS=alice=<secret> kmaplab
# (Listening on 0.0.0.0 needs tokens: the server refuses to start open to the network.)
# scripts/docker-mirror.sh performs these same steps without Docker, and the tests run it.

FROM node:20-bookworm AS build
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary can be fetched.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 KMAPLAB_DB=/data/kmaplab.db
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY migrations ./migrations
COPY web ./web
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node is PID 1 and handles SIGTERM itself (drain, commit, close the database, exit 0).
CMD ["node", "dist/server.js"]
