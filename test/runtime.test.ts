import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { parse } from "yaml"

// The suite must run on the Node that production runs (the Dockerfile's node:24 image), not on whatever Node the
// machine has: `pnpm test` puts the pinned `node` dev dependency's binary first on PATH (see README, Quick start).
const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), "utf8")
const pinned = (JSON.parse(read("package.json")) as { readonly devDependencies: Record<string, string> })
  .devDependencies["node"]

describe("runtime", () => {
  it("runs on Node 24", () => {
    expect(Number(process.versions.node.split(".")[0])).toBe(24)
  })

  it("runs on the Node pinned as the `node` dev dependency", () => {
    expect(process.versions.node).toBe(pinned)
  })

  it("tells pnpm the same version for its `engines` checks", () => {
    expect((parse(read("pnpm-workspace.yaml")) as { readonly nodeVersion?: unknown }).nodeVersion).toBe(pinned)
  })
})
