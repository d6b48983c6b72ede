"""Onboarding: look at a user's data files and propose the config overlay that runs on them.

``init-data`` exists because describing a real file by hand (delimiter, header, which column
is the user, how the time is written, which rows are cancellations, which evaluation protocol
the data can support) took every new user several failed runs. This package does that
reading once, from the names *and* the values of the columns, and writes an overlay the user
can run unedited and then review: every guess is listed with its confidence and the config
key that changes it.

Pure: pandas/pyarrow and the task specs' light declarations only; no runtime, no Dagster.

- ``reading``: find the files, sniff CSV delimiter/header/encoding, load a frame per file.
- ``inference``: column roles, time format, rating scale, row filters, split protocol.
- ``overlay``: the YAML overlay text and the printed summary.
"""

from __future__ import annotations

from recomart_pipeline.onboarding.inference import Choice, Proposal, TableProposal, propose
from recomart_pipeline.onboarding.overlay import render_overlay, render_summary
from recomart_pipeline.onboarding.reading import OnboardingError, read_inputs

__all__ = [
    "Choice",
    "OnboardingError",
    "Proposal",
    "TableProposal",
    "propose",
    "read_inputs",
    "render_overlay",
    "render_summary",
]
