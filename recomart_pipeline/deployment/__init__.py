"""Model registry, promotion/rollback/approval and the CLI commands around them."""
