"""The run report: sections gathered from upstream artifacts, rendered as Markdown and HTML."""
