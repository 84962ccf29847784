import { Effect, Layer, Logger } from "effect"
import { ProcessorConfig } from "../config/Config.js"

/** One logger: JSON lines in production, pretty for a person at a terminal; level from LOG_LEVEL. */
export const layer = Layer.unwrapEffect(
  Effect.map(ProcessorConfig, (config) =>
    Layer.merge(
      config.logFormat === "json" ? Logger.json : Logger.pretty,
      Logger.minimumLogLevel(config.logLevel)
    ))
)
