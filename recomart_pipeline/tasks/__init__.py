"""Built-in tasks: one module each, exposing Config, run(ctx) and optional declare_checks."""
