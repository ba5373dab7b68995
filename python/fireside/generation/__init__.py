"""Building blocks of text generation: detokenizing, stop strings, sampling, results."""

from fireside.generation.detokenizer import StreamingDetokenizer
from fireside.generation.json_schema import json_schema_to_grammar
from fireside.generation.results import FinishReason, GenerationResult, Timings, TokenLogprob, Usage
from fireside.generation.sampling import SamplingParams, build_sampler
from fireside.generation.stops import StopHoldback

__all__ = [
    "FinishReason",
    "GenerationResult",
    "SamplingParams",
    "StopHoldback",
    "StreamingDetokenizer",
    "Timings",
    "TokenLogprob",
    "Usage",
    "build_sampler",
    "json_schema_to_grammar",
]
