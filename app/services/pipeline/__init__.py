"""The command pipeline: per-vehicle lanes (``core``), admission to them (``admission``),
running a command (``execution``) and storing its end (``ending``); ``entries`` is shared."""

from app.services.pipeline.core import Pipeline
from app.services.pipeline.entries import Cancellation, Job, PipelineSettings

__all__ = ["Cancellation", "Job", "Pipeline", "PipelineSettings"]
