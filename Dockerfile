# syntax=docker/dockerfile:1
#
# The processor as a container: `docker build -t processor .`, then run it with REDIS_URL and POSTGRES_URL
# (see compose.yaml). Both stages use the same base so native optional dependencies (msgpackr-extract,
# @parcel/watcher) get prebuilt binaries for the same libc and architecture.
# Bump the pin to the newest 22.x patch when rebuilding; pin by digest (@sha256:...) for reproducible builds.
ARG NODE_IMAGE=node:22.22.0-bookworm-slim

# ---- build: dev dependencies + TypeScript → dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The manifest first, so the dependency layer is reused while only the sources change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, compiled JS and the SQL migrations ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Read at runtime from ../../migrations relative to dist/postgres/Migrations.js, i.e. /app/migrations.
COPY migrations ./migrations

# Files stay owned by root (read-only for the process); the worker writes nothing to disk.
USER node

# Metrics and health endpoints (HTTP_PORT, default 9464).
EXPOSE 9464
# The runtime turns SIGTERM into an interruption and drains; SHUTDOWN_TIMEOUT_MS (15 s) bounds it.
STOPSIGNAL SIGTERM
# No curl in slim images: node's own fetch, with a deadline shorter than --timeout.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||9464)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form, no shell or npm in between: node is PID 1 and receives SIGTERM itself.
CMD ["node", "--enable-source-maps", "dist/main.js"]
