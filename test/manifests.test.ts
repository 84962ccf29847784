import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { Deployment } from "kubernetes-models/apps/v1"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1"
import { Secret } from "kubernetes-models/v1"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"
import { settings } from "../src/config/Config.js"

// No cluster runs here: deploy/kubernetes is checked against the API schemas (kubernetes-models and
// @kubernetes-models/keda, both for values and, through their TypeScript types, for unknown fields, which
// kubectl's strict field validation refuses), and against the worker itself: its Config must accept the
// Deployment's settings, and the probes, grace period, resources and KEDA trigger must agree with them.

const ROOT = fileURLToPath(new URL("../", import.meta.url))
const DIR = `${ROOT}deploy/kubernetes/`

/**
 * Measured RSS of the worker on Node 24 with its node flags (docs/PERFORMANCE.md): peak draining 1M entries over
 * 100,000 devices, and idle.
 */
const MEASURED_PEAK_RSS = 409 * 2 ** 20
const MEASURED_IDLE_RSS = 214 * 2 ** 20

// Parsed YAML, walked by hand: the checks below test each value they read.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

interface Doc {
  readonly file: string
  readonly value: Json
}

const loadDocs = (): ReadonlyArray<Doc> =>
  readdirSync(DIR).filter((f) => f.endsWith(".yaml")).sort().flatMap((file) =>
    parseAllDocuments(readFileSync(DIR + file, "utf8")).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`)
      return { file, value: doc.toJS() as Json }
    })
  )

// Each kind: its model (schema validation) and the TypeScript type the strict field check assigns it to.
const KINDS: Record<string, { readonly validate: (value: Json) => void; readonly type: readonly [string, string] }> = {
  "apps/v1 Deployment": {
    validate: (v) => new Deployment(v as ConstructorParameters<typeof Deployment>[0]).validate(),
    type: ["kubernetes-models/apps/v1/Deployment", "IDeployment"]
  },
  "policy/v1 PodDisruptionBudget": {
    validate: (v) => new PodDisruptionBudget(v as ConstructorParameters<typeof PodDisruptionBudget>[0]).validate(),
    type: ["kubernetes-models/policy/v1/PodDisruptionBudget", "IPodDisruptionBudget"]
  },
  "v1 Secret": {
    validate: (v) => new Secret(v as ConstructorParameters<typeof Secret>[0]).validate(),
    type: ["kubernetes-models/v1/Secret", "ISecret"]
  },
  "keda.sh/v1alpha1 ScaledObject": {
    validate: (v) => new ScaledObject(v as ConstructorParameters<typeof ScaledObject>[0]).validate(),
    type: ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "IScaledObject"]
  },
  "keda.sh/v1alpha1 TriggerAuthentication": {
    validate: (v) => new TriggerAuthentication(v as ConstructorParameters<typeof TriggerAuthentication>[0]).validate(),
    type: ["@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication", "ITriggerAuthentication"]
  }
}

const KUSTOMIZATION = "kustomize.config.k8s.io/v1beta1 Kustomization"
const kindOf = (value: Json) => `${value["apiVersion"]} ${value["kind"]}`

/**
 * Type errors of the documents assigned to the models' TypeScript interfaces: unknown fields (excess property
 * checks reach every nested literal), wrong types and enum values. One in-memory program for all documents.
 */
const typeErrors = (docs: ReadonlyArray<Doc>): ReadonlyArray<string> => {
  const typed = docs.filter((d) => KINDS[kindOf(d.value)] !== undefined)
  const fileName = `${ROOT}test/__manifests_typecheck__.ts`
  const source = typed.map((d, i) => {
    const [from, name] = KINDS[kindOf(d.value)]!.type
    return `import type { ${name} as T${i} } from "${from}"\nexport const doc${i}: T${i} = ${JSON.stringify(d.value)}\n`
  }).join("")
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: true,
    noEmit: true,
    types: []
  }
  const host = ts.createCompilerHost(options)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (f) => f === fileName || fileExists(f)
  host.readFile = (f) => (f === fileName ? source : readFile(f))
  host.getSourceFile = (f, language, onError, create) =>
    f === fileName ? ts.createSourceFile(f, source, language) : getSourceFile(f, language, onError, create)
  const program = ts.createProgram([fileName], options, host)
  return ts.getPreEmitDiagnostics(program, program.getSourceFile(fileName)).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1
    const doc = typed[Math.floor(line / 2)]
    return `${doc?.file ?? "?"} ${doc ? kindOf(doc.value) : ""}: ${ts.flattenDiagnosticMessageText(d.messageText, " ").slice(0, 300)}`
  })
}

/** Bytes of a Kubernetes memory quantity (binary and decimal suffixes). */
const bytes = (quantity: unknown): number => {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity))
  if (m === null) return Number.NaN
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ""] ?? 1
  return Number(m[1]) * unit
}

// The variables the worker reads: every quoted UPPER_SNAKE name in Config.ts.
const CONFIG_VARIABLES = new Set(
  [...readFileSync(`${ROOT}src/config/Config.ts`, "utf8").matchAll(/"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"/g)].map((m) => m[1]!)
)

/** Everything wrong with the manifests, schema first, then how they fit each other and the worker. */
const problems = (docs: ReadonlyArray<Doc>, typecheck = true): ReadonlyArray<string> => {
  const found: Array<string> = []
  for (const { file, value } of docs) {
    const kind = kindOf(value)
    if (kind === KUSTOMIZATION) continue
    const model = KINDS[kind]
    if (model === undefined) {
      found.push(`${file}: unexpected ${kind}`)
      continue
    }
    try {
      model.validate(value)
    } catch (error) {
      found.push(`${file} ${kind}: ${String(error).slice(0, 300)}`)
    }
  }
  if (typecheck) found.push(...typeErrors(docs))

  const one = (kind: string, file?: string) => {
    const all = docs.filter((d) => kindOf(d.value) === kind && (file === undefined || d.file === file))
    if (all.length !== 1) found.push(`expected one ${kind}${file ? ` in ${file}` : ""}, found ${all.length}`)
    return all[0]?.value ?? {}
  }
  const deployment = one("apps/v1 Deployment", "deployment.yaml")
  const pdb = one("policy/v1 PodDisruptionBudget", "pdb.yaml")
  const scaled = one("keda.sh/v1alpha1 ScaledObject", "scaledobject.yaml")
  const auth = one("keda.sh/v1alpha1 TriggerAuthentication", "scaledobject.yaml")
  const secret = one("v1 Secret", "secret.example.yaml")
  const kustomization = one(KUSTOMIZATION, "kustomization.yaml")

  // The worker's settings as its own Config reads the Deployment's plain values (defaults for the rest).
  const pod = deployment["spec"]?.["template"]?.["spec"] ?? {}
  const containers: Array<Json> = pod["containers"] ?? []
  if (containers.length !== 1) found.push(`the pod has ${containers.length} containers, expected 1`)
  const container = containers[0] ?? {}
  // The image's CMD carries the worker's node flags (see "node flags" below): a command here would drop them.
  if (container["command"] !== undefined || container["args"] !== undefined) found.push("the container overrides the image's command (and its node flags)")
  const env: Array<Json> = container["env"] ?? []
  for (const e of env) {
    if (!CONFIG_VARIABLES.has(e["name"]) && e["name"] !== "NODE_OPTIONS") found.push(`env ${e["name"]} is not a setting of the worker`)
  }
  const plain = new Map(env.filter((e) => typeof e["value"] === "string").map((e) => [e["name"] as string, e["value"] as string]))
  const parsed = Effect.runSync(Effect.either(Effect.withConfigProvider(settings, ConfigProvider.fromMap(plain))))
  if (Either.isLeft(parsed)) {
    found.push(`the worker refuses the Deployment's settings: ${String(parsed.left).slice(0, 200)}`)
    return found
  }
  const config = parsed.right

  const consumer = env.find((e) => e["name"] === "REDIS_CONSUMER")
  if (consumer?.["valueFrom"]?.["fieldRef"]?.["fieldPath"] !== "metadata.name") found.push("REDIS_CONSUMER is not the pod's name (fieldRef metadata.name)")

  // Probes: the right paths, on the port the worker listens on.
  const ports: Array<Json> = container["ports"] ?? []
  const portNumber = (port: unknown) => typeof port === "number" ? port : ports.find((p) => p["name"] === port)?.["containerPort"]
  if (!ports.some((p) => p["containerPort"] === config.httpPort)) found.push(`no containerPort ${config.httpPort} (HTTP_PORT)`)
  for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]] as const) {
    const get = container[probe]?.["httpGet"]
    if (get?.["path"] !== path) found.push(`${probe} path is ${get?.["path"]}, expected ${path}`)
    if (portNumber(get?.["port"]) !== config.httpPort) found.push(`${probe} port ${get?.["port"]} is not HTTP_PORT ${config.httpPort}`)
  }
  const annotations = deployment["spec"]?.["template"]?.["metadata"]?.["annotations"] ?? {}
  if (annotations["prometheus.io/port"] !== undefined && Number(annotations["prometheus.io/port"]) !== config.httpPort) {
    found.push("the prometheus.io/port annotation is not HTTP_PORT")
  }

  // The kubelet's SIGKILL comes after terminationGracePeriodSeconds: the worker's own deadline must come first.
  const grace = (pod["terminationGracePeriodSeconds"] ?? 30) * 1000
  const shutdown = Duration.toMillis(config.shutdownTimeout)
  if (!(grace > shutdown)) found.push(`terminationGracePeriodSeconds ${grace / 1000} s is not above SHUTDOWN_TIMEOUT_MS ${shutdown} ms`)

  // Resources from the measured RSS.
  const resources = container["resources"] ?? {}
  const limit = bytes(resources["limits"]?.["memory"])
  const request = bytes(resources["requests"]?.["memory"])
  if (!(limit > MEASURED_PEAK_RSS)) found.push(`memory limit ${resources["limits"]?.["memory"]} is not above the measured peak RSS (409 MiB)`)
  if (!(request >= MEASURED_IDLE_RSS && request <= limit)) found.push(`memory request ${resources["requests"]?.["memory"]} is not between idle RSS and the limit`)
  if (resources["requests"]?.["cpu"] === undefined) found.push("no CPU request")

  // Secrets: every reference names the one Secret, and a key the example shows.
  const secretName = secret["metadata"]?.["name"]
  const secretKeys = new Set(Object.keys({ ...secret["data"], ...secret["stringData"] }))
  const refs = [
    ...env.flatMap((e) => e["valueFrom"]?.["secretKeyRef"] ? [e["valueFrom"]["secretKeyRef"] as Json] : []),
    ...((auth["spec"]?.["secretTargetRef"] ?? []) as Array<Json>)
  ]
  for (const ref of refs) {
    if (ref["name"] !== secretName || !secretKeys.has(ref["key"])) found.push(`secret reference ${ref["name"]}/${ref["key"]} is not in secret.example.yaml`)
  }
  for (const name of ["REDIS_URL", "POSTGRES_URL"]) {
    if (plain.has(name)) found.push(`${name} is written in the Deployment; it belongs in the Secret`)
  }

  // Selectors: the Deployment selects its own pods, the PDB the same pods.
  const selector = deployment["spec"]?.["selector"]?.["matchLabels"] ?? {}
  const podLabels = deployment["spec"]?.["template"]?.["metadata"]?.["labels"] ?? {}
  if (Object.keys(selector).length === 0) found.push("the Deployment has no matchLabels")
  for (const [k, v] of Object.entries(selector)) if (podLabels[k] !== v) found.push(`the pod template lacks the selector label ${k}=${String(v)}`)
  if (JSON.stringify(pdb["spec"]?.["selector"]?.["matchLabels"]) !== JSON.stringify(selector)) found.push("the PDB selects other pods than the Deployment")
  if (pdb["spec"]?.["minAvailable"] !== undefined) found.push("the PDB uses minAvailable, which blocks drains at one replica")

  // KEDA: the Deployment, on the stream and group the worker reads.
  const target = scaled["spec"]?.["scaleTargetRef"] ?? {}
  if (target["name"] !== deployment["metadata"]?.["name"] || (target["kind"] ?? "Deployment") !== "Deployment" ||
    (target["apiVersion"] ?? "apps/v1") !== "apps/v1") {
    found.push(`the ScaledObject targets ${target["kind"] ?? "Deployment"} ${target["name"]}, not the Deployment`)
  }
  const triggers: Array<Json> = scaled["spec"]?.["triggers"] ?? []
  if (triggers.length !== 1 || triggers[0]!["type"] !== "redis-streams") found.push("expected one redis-streams trigger")
  const trigger = triggers[0] ?? {}
  const meta = trigger["metadata"] ?? {}
  if (meta["stream"] !== config.stream) found.push(`the trigger's stream ${meta["stream"]} is not REDIS_STREAM ${config.stream}`)
  if (meta["consumerGroup"] !== config.group) found.push(`the trigger's consumerGroup ${meta["consumerGroup"]} is not REDIS_GROUP ${config.group}`)
  // With a consumer group, KEDA measures the pending list unless lagCount is set.
  if (!/^[1-9]\d*$/.test(meta["lagCount"] ?? "")) found.push("the trigger has no positive lagCount: it would scale on pending entries, not lag")
  if (meta["pendingEntriesCount"] !== undefined || meta["streamLength"] !== undefined) found.push("the trigger mixes lagCount with another measure")
  if (meta["address"] === undefined && meta["addressFromEnv"] === undefined && meta["host"] === undefined) found.push("the trigger has no Redis address")
  if (trigger["authenticationRef"]?.["name"] !== auth["metadata"]?.["name"]) found.push("the trigger does not use the TriggerAuthentication")
  const min = scaled["spec"]?.["minReplicaCount"] ?? 0
  const max = scaled["spec"]?.["maxReplicaCount"] ?? 100
  if (!(min >= 1 && max >= min)) found.push(`replica bounds ${min}..${max}`)
  if (deployment["spec"]?.["replicas"] !== undefined) found.push("the Deployment sets replicas, which the HPA owns")

  // Kustomize applies everything but the example Secret.
  const listed: Array<string> = kustomization["resources"] ?? []
  const expected = [...new Set(docs.map((d) => d.file))].filter((f) => f !== "kustomization.yaml" && f !== "secret.example.yaml")
  if (JSON.stringify([...listed].sort()) !== JSON.stringify(expected)) found.push(`kustomization resources ${listed.join(",")} are not ${expected.join(",")}`)
  return found
}

const docs = loadDocs()

/** A copy of the documents with one changed. */
const changed = (file: string, kind: string, change: (value: Json) => void): ReadonlyArray<Doc> =>
  docs.map((d) => {
    if (d.file !== file || kindOf(d.value) !== kind) return d
    const value = structuredClone(d.value)
    change(value)
    return { file, value }
  })

const deploymentChanged = (change: (value: Json) => void) => changed("deployment.yaml", "apps/v1 Deployment", change)
const containerOf = (value: Json): Json => value["spec"]["template"]["spec"]["containers"][0]
const envOf = (value: Json, name: string): Json => containerOf(value)["env"].find((e: Json) => e["name"] === name)
const triggerOf = (value: Json): Json => value["spec"]["triggers"][0]

describe("deploy/kubernetes", () => {
  it("validates against the Kubernetes and KEDA schemas and agrees with the worker's settings", () => {
    expect(docs.map((d) => `${d.file}: ${kindOf(d.value)}`)).toEqual([
      "deployment.yaml: apps/v1 Deployment",
      `kustomization.yaml: ${KUSTOMIZATION}`,
      "pdb.yaml: policy/v1 PodDisruptionBudget",
      "scaledobject.yaml: keda.sh/v1alpha1 ScaledObject",
      "scaledobject.yaml: keda.sh/v1alpha1 TriggerAuthentication",
      "secret.example.yaml: v1 Secret"
    ])
    expect(problems(docs)).toEqual([])
  }, 60_000)

  it("holds no real secret: the example's values are placeholders", () => {
    const secret = docs.find((d) => d.file === "secret.example.yaml")!.value
    for (const [key, value] of Object.entries(secret["stringData"] as Record<string, string>)) {
      const password = /:\/\/[^:/@]*:([^@]*)@/.exec(value)?.[1] ?? (key.endsWith("PASSWORD") ? value : undefined)
      if (password !== undefined) expect(password, key).toBe("CHANGE-ME")
    }
  })

  // Each broken variant must be caught, with a message that says what broke.
  // Only misspelt fields need the TypeScript program (a second or more each); the rest skip it.
  const broken: ReadonlyArray<readonly [string, ReadonlyArray<Doc>, string]> = [
    ["a misspelt field", deploymentChanged((v) => {
      const c = containerOf(v)
      c["livenesProbe"] = c["livenessProbe"]
      delete c["livenessProbe"]
    }), "livenesProbe"],
    ["a misspelt KEDA field", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      v["spec"]["maxReplicas"] = v["spec"]["maxReplicaCount"]
      delete v["spec"]["maxReplicaCount"]
    }), "'\"maxReplicas\"' does not exist"],
    ["a schema violation", deploymentChanged((v) => {
      containerOf(v)["ports"][0]["containerPort"] = "9464"
    }), "containerPort must be integer"],
    ["the liveness probe on another path", deploymentChanged((v) => {
      containerOf(v)["livenessProbe"]["httpGet"]["path"] = "/health"
    }), "livenessProbe path is /health"],
    ["the readiness probe on another port", deploymentChanged((v) => {
      containerOf(v)["readinessProbe"]["httpGet"]["port"] = 8080
    }), "readinessProbe port 8080"],
    ["HTTP_PORT moved without the probes", deploymentChanged((v) => {
      envOf(v, "HTTP_PORT")["value"] = "9000"
    }), "no containerPort 9000"],
    ["a grace period below the shutdown timeout", deploymentChanged((v) => {
      v["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 15
    }), "terminationGracePeriodSeconds 15 s"],
    ["a shutdown timeout above the grace period", deploymentChanged((v) => {
      envOf(v, "SHUTDOWN_TIMEOUT_MS")["value"] = "45000"
    }), "SHUTDOWN_TIMEOUT_MS 45000"],
    ["a value the worker refuses", deploymentChanged((v) => {
      envOf(v, "PG_POOL_SIZE")["value"] = "0"
    }), "refuses the Deployment's settings"],
    ["a variable the worker does not read", deploymentChanged((v) => {
      containerOf(v)["env"].push({ name: "REDIS_CONSUMERS", value: "x" })
    }), "REDIS_CONSUMERS is not a setting"],
    ["REDIS_CONSUMER not from the pod name", deploymentChanged((v) => {
      envOf(v, "REDIS_CONSUMER")["valueFrom"]["fieldRef"]["fieldPath"] = "spec.nodeName"
    }), "REDIS_CONSUMER is not the pod's name"],
    ["a memory limit under the measured peak", deploymentChanged((v) => {
      containerOf(v)["resources"]["limits"]["memory"] = "400Mi"
    }), "memory limit 400Mi"],
    ["a command of its own", deploymentChanged((v) => {
      containerOf(v)["command"] = ["node", "dist/main.js"]
    }), "overrides the image's command"],
    ["a password in the Deployment", deploymentChanged((v) => {
      envOf(v, "REDIS_URL")["value"] = "redis://:pw@redis:6379"
      delete envOf(v, "REDIS_URL")["valueFrom"]
    }), "REDIS_URL is written in the Deployment"],
    ["a selector the pods lack", deploymentChanged((v) => {
      v["spec"]["selector"]["matchLabels"] = { app: "processor" }
    }), "lacks the selector label app=processor"],
    ["a PDB on other pods", changed("pdb.yaml", "policy/v1 PodDisruptionBudget", (v) => {
      v["spec"]["selector"]["matchLabels"] = { "app.kubernetes.io/name": "other" }
    }), "the PDB selects other pods"],
    ["a ScaledObject on another Deployment", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      v["spec"]["scaleTargetRef"]["name"] = "worker"
    }), "targets Deployment worker"],
    ["a trigger on another stream", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      triggerOf(v)["metadata"]["stream"] = "telemetry"
    }), "stream telemetry is not REDIS_STREAM telemetry:t"],
    ["a trigger on another group", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      triggerOf(v)["metadata"]["consumerGroup"] = "processors"
    }), "consumerGroup processors"],
    ["a trigger on pending entries", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      delete triggerOf(v)["metadata"]["lagCount"]
    }), "no positive lagCount"],
    ["a numeric trigger value (KEDA wants strings)", changed("scaledobject.yaml", "keda.sh/v1alpha1 ScaledObject", (v) => {
      triggerOf(v)["metadata"]["lagCount"] = 10000
    }), "must be string"],
    ["a TriggerAuthentication key the Secret lacks", changed("scaledobject.yaml", "keda.sh/v1alpha1 TriggerAuthentication", (v) => {
      v["spec"]["secretTargetRef"][0]["key"] = "password"
    }), "processor/password"]
  ]

  it.each(broken)("finds %s", (what, variant, message) => {
    expect(problems(variant, what.startsWith("a misspelt")).join("\n")).toContain(message)
  }, 60_000)
})

// The worker's node flags have one source, package.json's `start` (`node <flags> dist/main.js`), which bench/child.ts
// reads for every worker it starts. The Dockerfile cannot read it (exec form, node as PID 1), so it is held to it here;
// compose and the Deployment run the image's CMD.
const read = (file: string) => readFileSync(`${ROOT}${file}`, "utf8")

/** The flags of `node [--flag …] dist/main.js`, or undefined for another shape. */
const startFlags = (script: string): ReadonlyArray<string> | undefined => {
  const match = /^node((?:\s+--\S+)*)\s+dist\/main\.js$/.exec(script.trim())
  return match === null ? undefined : match[1]!.split(/\s+/).filter((flag) => flag !== "")
}

/** The JSON array of the Dockerfile's last CMD. */
const dockerCmd = (dockerfile: string): ReadonlyArray<string> => {
  const lines = dockerfile.split("\n").filter((line) => /^CMD\s/.test(line))
  return JSON.parse(lines.at(-1)!.replace(/^CMD\s+/, "")) as ReadonlyArray<string>
}

describe("node flags", () => {
  const scripts = (JSON.parse(read("package.json")) as { readonly scripts: Record<string, string> }).scripts
  const flags = startFlags(scripts["start"] ?? "")

  it("package.json's start script is `node [--flag …] dist/main.js`", () => {
    expect(flags).toBeDefined()
    // The young generation is sized (docs/PERFORMANCE.md): V8's own choice on a large machine is 2 × 64 MiB.
    expect(flags!.some((flag) => /^--max-semi-space-size=\d+$/.test(flag))).toBe(true)
  })

  it("the Dockerfile's CMD runs dist/main.js with the same flags", () => {
    const cmd = dockerCmd(read("Dockerfile"))
    expect(cmd[0]).toBe("node")
    expect(cmd.at(-1)).toBe("dist/main.js")
    // Its own extra flags (--enable-source-maps) may stand between; every start flag is there, in the same order.
    expect(cmd.slice(1, -1).filter((flag) => flags!.includes(flag))).toEqual(flags)
  })

  it("compose runs the image's CMD", () => {
    const processor = (parseAllDocuments(read("compose.yaml"))[0]!.toJS() as Json)["services"]["processor"] as Json
    expect(processor["command"]).toBeUndefined()
    expect(processor["entrypoint"]).toBeUndefined()
  })

  it("tells a start script of another shape", () => {
    expect(startFlags("node dist/main.js")).toEqual([])
    expect(startFlags("NODE_OPTIONS=--max-semi-space-size=16 node dist/main.js")).toBeUndefined()
    expect(startFlags("node --max-semi-space-size=16 dist/other.js")).toBeUndefined()
  })
})
