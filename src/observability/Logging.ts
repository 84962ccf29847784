import { Context, Effect, FiberRef, FiberRefs, HashMap, Layer, Logger, Option, Tracer } from "effect"
import { ProcessorConfig } from "../config/Config.js"

/**
 * Adds `trace_id` and `span_id` annotations to every line logged inside a span (a pipeline batch, say), so a
 * log line leads to its trace. Outside spans the line is unchanged.
 */
export const withTraceIds = <Message, Output>(logger: Logger.Logger<Message, Output>): Logger.Logger<Message, Output> =>
  Logger.mapInputOptions(logger, (options) => {
    const span = Context.getOption(FiberRefs.getOrDefault(options.context, FiberRef.currentContext), Tracer.ParentSpan)
    if (Option.isNone(span)) return options
    const annotations = HashMap.set(HashMap.set(options.annotations, "trace_id", span.value.traceId), "span_id", span.value.spanId)
    return { ...options, annotations }
  })

/** One logger: JSON lines in production, pretty for a person at a terminal; level from LOG_LEVEL. */
export const layer = Layer.unwrapEffect(
  Effect.map(ProcessorConfig, (config) =>
    Layer.merge(
      Logger.replace(
        Logger.defaultLogger,
        withTraceIds(config.logFormat === "json" ? Logger.withConsoleLog(Logger.jsonLogger) : Logger.prettyLoggerDefault)
      ),
      Logger.minimumLogLevel(config.logLevel)
    ))
)
