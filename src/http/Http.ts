import { createHash, timingSafeEqual } from "node:crypto"
import { createServer } from "node:http"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Data, Effect, Layer, Option, Redacted } from "effect"
import { ProcessorConfig } from "../config/Config.js"
import { messageOf } from "../ErrorMessage.js"
import { Health } from "../observability/Health.js"
import { Prometheus } from "../observability/Telemetry.js"
import { DeviceState, type DeviceView } from "../state/DeviceState.js"
import type { LastPosition } from "../state/LastPosition.js"
import { unstorable } from "../position/Position.js"
import { LatestPositions } from "../state/LatestPositions.js"

// The operations endpoints, on one port (HTTP_PORT):
//   GET /metrics       Prometheus exposition               open
//   GET /healthz       200 unless the pipeline is stuck with work waiting (then 503: restart me)   open
//   GET /readyz        200 when Redis, PostgreSQL and the consumer are all fine and progressing, else 503
//                      naming what is not ("draining" after SIGTERM)
//   GET /devices/:id   a device's state: in memory, else its newest stored row   only with HTTP_AUTH_TOKEN, as a bearer token
// The open endpoints say nothing about devices or positions.

export class HttpListenError extends Data.TaggedError("HttpListenError")<{ readonly port: number; readonly cause: unknown }> {
  override get message() {
    return `cannot listen on HTTP_PORT ${this.port}: ${messageOf(this.cause)}`
  }
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest()

/**
 * Whether an Authorization header carries `token` as a bearer token. Both sides are hashed first, so the
 * comparison is constant-time over equal lengths and the token's length does not leak either.
 */
export const bearerMatches = (header: string | undefined, token: Redacted.Redacted): boolean => {
  const match = header === undefined ? null : /^Bearer +([^ ]+) *$/i.exec(header)
  if (match === null) return false
  return timingSafeEqual(sha256(match[1]!), sha256(Redacted.value(token)))
}

// A device as JSON text. The attributes are spliced in as stored (positions.attributes): bigints as exact
// JSON numbers, bytes as lowercase hex, whether the device was seen live or hydrated from the table.
const lastPositionJson = ({ attributesJson, device_id: _, timestamp, ...fields }: LastPosition): string =>
  JSON.stringify({ timestamp: timestamp.toISOString(), ...fields }).slice(0, -1) + `,"attributes":${attributesJson}}`

/**
 * A device as the endpoint answers it. `source` says who answered: "memory" (this process has seen the device
 * since it started, or hydrated it) or "table" (not in memory: its newest row in positions; then
 * last_seen_at is null and position_count_session 0).
 */
export const deviceJson = (deviceId: string, device: DeviceView, source: "memory" | "table" = "memory"): string =>
  `{"device_id":${JSON.stringify(deviceId)},"source":"${source}",` +
  `"last_position":${device.last_position === undefined ? "null" : lastPositionJson(device.last_position)},` +
  `"last_seen_at":${source === "table" ? "null" : JSON.stringify(device.last_seen_at.toISOString())},` +
  `"position_count_session":${device.position_count_session}}`

const notFound = HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 })
const unauthorized = HttpServerResponse.unsafeJson({ error: "unauthorized" }, {
  status: 401,
  headers: { "www-authenticate": "Bearer" }
})

export const router = Effect.gen(function*() {
  const config = yield* ProcessorConfig
  const prometheus = yield* Prometheus
  const health = yield* Health
  const state = yield* DeviceState
  const { latest } = yield* LatestPositions

  const metrics = Effect.map(prometheus.scrape, (body) =>
    HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))

  const readyz = Effect.map(health.readiness, (readiness) =>
    HttpServerResponse.unsafeJson(readiness, { status: readiness.ready ? 200 : 503 }))

  const json = (body: string) =>
    HttpServerResponse.text(body, { contentType: "application/json", headers: { "cache-control": "no-store" } })

  // A device not in memory (never seen by this process, or evicted) is answered from its newest stored row.
  const fromTable = (id: string) =>
    // An id no position can have (U+0000, a lone surrogate) is not asked of the database, which would refuse it.
    unstorable(id) !== undefined ? Effect.succeed(notFound) : latest([id]).pipe(
      Effect.map((rows) => rows.get(id)),
      Effect.map((row) =>
        row === undefined
          ? notFound
          : json(deviceJson(id, { last_position: row, last_seen_at: row.timestamp, position_count_session: 0 }, "table"))
      ),
      Effect.catchAll((error) =>
        Effect.as(
          Effect.logWarning(`/devices: stored row not readable: ${error.message}`),
          HttpServerResponse.unsafeJson({ error: "device state unavailable" }, { status: 503 })
        )
      )
    )

  if (Option.isNone(config.httpAuthToken)) yield* Effect.logInfo("GET /devices/:id is off: HTTP_AUTH_TOKEN is not set")

  // Liveness: 503 only when the pipeline is stuck while work waits, so that the orchestrator restarts it.
  // Server outages are readiness matters: restarting does not bring a server back.
  const healthz = Effect.map(health.liveness, (liveness) =>
    HttpServerResponse.unsafeJson({ status: liveness.status }, { status: liveness.alive ? 200 : 503 }))

  // Without a configured token the endpoint does not exist: 404 for every device, whatever is sent.
  const device = Option.match(config.httpAuthToken, {
    onNone: () => Effect.succeed(notFound),
    onSome: (token) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (!bearerMatches(request.headers["authorization"], token)) return unauthorized
        const { id } = yield* HttpRouter.params
        if (id === undefined) return notFound
        return yield* Option.match(yield* state.get(id), {
          onNone: () => fromTable(id),
          onSome: (d) => Effect.succeed(json(deviceJson(id, d)))
        })
      })
  })

  return HttpRouter.empty.pipe(
    HttpRouter.get("/metrics", metrics),
    HttpRouter.get("/healthz", healthz),
    HttpRouter.get("/readyz", readyz),
    HttpRouter.get("/devices/:id", device),
    Effect.catchTag("RouteNotFound", () => Effect.succeed(notFound))
  )
})

/**
 * The HTTP server, listening while the layer's scope is open and closed with it (so it never keeps the
 * process alive after the pipeline). HTTP_PORT=0 takes a free port; the port is logged either way.
 */
export const layer = Layer.unwrapEffect(
  Effect.gen(function*() {
    const { httpHost, httpPort } = yield* ProcessorConfig
    const app = yield* router
    // HTTP_HOST unset: every interface (Node's default).
    const listen = Option.match(httpHost, { onNone: () => ({ port: httpPort }), onSome: (host) => ({ port: httpPort, host }) })
    const server = NodeHttpServer.layer(() => createServer(), listen).pipe(
      // A typed failure, not a defect: the worker stops with this one line (ExitCode: 1).
      Layer.mapError((error) => new HttpListenError({ port: httpPort, cause: error.cause }))
    )
    return Layer.merge(
      // No span per request: probes and scrapes every few seconds would drown the pipeline's traces.
      HttpServer.serve(app).pipe(HttpMiddleware.withTracerDisabledWhen(() => true)),
      Layer.effectDiscard(HttpServer.addressWith((address) =>
        address._tag === "TcpAddress"
          ? Effect.logInfo(`http listening on port ${address.port}`).pipe(Effect.annotateLogs({ host: address.hostname }))
          : Effect.logInfo(`http listening on ${address.path}`)
      ))
    ).pipe(Layer.provide(server))
  })
).pipe(Layer.annotateLogs({ service: "http" }))
