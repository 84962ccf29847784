import { createConnection, createServer, type Server, type Socket } from "node:net"
import { Effect } from "effect"

/**
 * How a proxy cuts the connections it holds, the way a failover, a NAT timeout or a pod moved behind a
 * partition looks to a client that was not told:
 * - "reset": the server side is closed; the client learns only when it next sends, and gets a RST.
 * - "blackhole": nothing is forwarded either way any more, and nothing is closed.
 */
export type CutMode = "reset" | "blackhole"

export interface TcpProxy {
  /** The port it listens on, 127.0.0.1. */
  readonly port: number
  /** Cuts every connection open now; connections made afterwards are forwarded normally. */
  readonly cut: (mode: CutMode) => void
  /** Connections accepted so far, cut or not. */
  readonly accepted: () => number
}

interface Pair {
  readonly client: Socket
  readonly upstream: Socket
  mode: CutMode | undefined
}

/** A TCP proxy on a free port to `target`, closed (every socket destroyed) with the scope. */
export const tcpProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.async<{ server: Server; pairs: Set<Pair>; proxy: TcpProxy }>((resume) => {
      const pairs = new Set<Pair>()
      let accepted = 0
      const server = createServer((client) => {
        accepted++
        const upstream = createConnection(target)
        const pair: Pair = { client, upstream, mode: undefined }
        pairs.add(pair)
        client.on("error", () => {})
        upstream.on("error", () => {})
        client.on("data", (data) => {
          if (pair.mode === undefined) upstream.write(data)
          else if (pair.mode === "reset") client.resetAndDestroy()
        })
        upstream.on("data", (data) => {
          if (pair.mode === undefined) client.write(data)
        })
        client.on("close", () => {
          pairs.delete(pair)
          upstream.destroy()
        })
        upstream.on("close", () => {
          if (pair.mode === undefined) client.destroy()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          server,
          pairs,
          proxy: {
            port,
            accepted: () => accepted,
            cut: (mode) => {
              for (const pair of pairs) {
                pair.mode = mode
                if (mode === "reset") pair.upstream.destroy()
              }
            }
          }
        }))
      })
    }),
    ({ pairs, server }) =>
      Effect.async<void>((resume) => {
        for (const { client, upstream } of pairs) {
          client.destroy()
          upstream.destroy()
        }
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ proxy }) => proxy))
