"""Integrations that record what the pipeline did in the tools ML teams already use."""
