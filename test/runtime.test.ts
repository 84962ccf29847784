import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

// The suite must run on the Node that production runs (the Dockerfile's node:24 image), not on whatever Node the
// machine has: `pnpm test` puts the pinned `node` dev dependency's binary first on PATH (see README, Quick start).
const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  readonly devDependencies: Record<string, string>
}

describe("runtime", () => {
  it("runs on Node 24", () => {
    expect(Number(process.versions.node.split(".")[0])).toBe(24)
  })

  it("runs on the Node pinned as the `node` dev dependency", () => {
    expect(process.versions.node).toBe(manifest.devDependencies["node"])
  })
})
