import { ConfigProvider, Effect, Layer } from "effect"
import { ProcessorConfig, settings } from "../../src/config/Config.js"

/** ProcessorConfig as the worker would load it from these environment variables. */
export const configLayer = (env: Record<string, string | number> = {}) =>
  Layer.effect(
    ProcessorConfig,
    Effect.withConfigProvider(
      settings,
      ConfigProvider.fromMap(new Map(Object.entries(env).map(([k, v]) => [k, String(v)])))
    )
  )
