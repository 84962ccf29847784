# syntax=docker/dockerfile:1
#
# The processor as a container: `docker build -t processor .`, then run it with REDIS_URL and POSTGRES_URL
# (see compose.yaml). Both stages use the same base so native optional dependencies (msgpackr-extract,
# @parcel/watcher) get prebuilt binaries for the same libc and architecture.
# Bump the pin to the newest 24.x patch when rebuilding (and the `node` dev dependency with it); pin by digest
# (@sha256:...) for reproducible builds.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# ---- build: dev dependencies + TypeScript → dist/ ----
FROM ${NODE_IMAGE} AS build
# pnpm at the version package.json pins (packageManager, checked against its sha512), through the corepack that
# Node 24 ships; no prompt before corepack's download.
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0
WORKDIR /app
# The manifest first, so the dependency layer is reused while only the sources change.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
RUN corepack pnpm install --frozen-lockfile
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN corepack pnpm build

# ---- runtime: production dependencies, compiled JS and the SQL migrations ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production COREPACK_ENABLE_DOWNLOAD_PROMPT=0
WORKDIR /app
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
# Production dependencies only (so not the `node` dev dependency: the image's own Node runs the worker). pnpm's store,
# metadata cache and corepack's copy of pnpm are not needed at run time; node_modules keeps its hard links to the files.
RUN corepack pnpm install --frozen-lockfile --prod \
  && rm -rf /root/.local/share/pnpm /root/.cache
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

# Exec form, no shell or pnpm in between: node is PID 1 and receives SIGTERM itself. The node flags are those of
# package.json's `start` script, their one source (test/manifests.test.ts holds this line to it): a young generation
# of 2 × 32 MiB instead of the 2 × 64 MiB V8 picks on a large machine (docs/PERFORMANCE.md). A flag given here wins
# over the same flag in NODE_OPTIONS; NODE_OPTIONS can add others (e.g. --max-old-space-size).
CMD ["node", "--max-semi-space-size=32", "--enable-source-maps", "dist/main.js"]
