"""Read-only views of a running process: the status document, metrics, the ops HTTP endpoint,
the raw-frame recorder and replay. They see the process through ``qfexbot.ops.view``'s
protocol, never the concrete runtime."""
