"""Prompts for the speculative-decoding tests: 20 that quote a given passage, 20 that
summarize one, 20 of free writing (ChatML, the test model's template)."""

from __future__ import annotations

PASSAGES = [
    (
        "The Rules-Requires-Root field states whether building the package needs root. "
        "It may be no, binary-targets, or a list of keywords. With no, the builder never "
        "uses root, and the files in the package belong to root by default."
    ),
    (
        "The lighthouse stands on the northern cape. Its lamp burns oil and turns once every "
        "ten seconds. The keeper climbs one hundred and twelve steps to reach the lamp, and "
        "he cleans the glass every morning before sunrise."
    ),
    (
        "To reset the router, hold the small button on the back for ten seconds until the "
        "light blinks orange. Then wait two minutes, connect to the network named HOME-SETUP "
        "and open the address printed on the label."
    ),
    (
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. It takes "
        "place in the chloroplasts of plant cells, which hold the green pigment chlorophyll. "
        "The oxygen leaves the leaf through small pores called stomata."
    ),
    (
        "def area(width, height):\n    if width < 0 or height < 0:\n        raise ValueError("
        "'negative size')\n    return width * height\n\ndef perimeter(width, height):\n    "
        "return 2 * (width + height)\n"
    ),
]
QUOTE = [
    "Repeat the text above word for word.",
    "Copy the first sentence of the text above exactly.",
    "Quote the text above exactly, then stop.",
    "Write the text above again, unchanged.",
]
SUMMARIZE = [
    "Summarize the text above in one sentence.",
    "What is the text above about? Answer briefly.",
    "List the main points of the text above.",
    "Explain the text above to a child.",
]
TOPICS = [
    "a dragon", "the sea", "autumn leaves", "a robot chef", "a lost key", "the moon",
    "a quiet library", "a thunderstorm", "a street market", "a paper boat", "an old clock",
    "a mountain village", "a shy cat", "the first snow", "a train at night", "a garden",
    "a busy airport", "a violin", "a desert road", "a lighthouse keeper",
]  # fmt: skip


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


QUOTING = [chat(f"{p}\n\n{q}") for p in PASSAGES for q in QUOTE]
SUMMARIZING = [chat(f"{p}\n\n{q}") for p in PASSAGES for q in SUMMARIZE]
FREE_WRITING = [chat(f"Write a short story about {t}.") for t in TOPICS]
KINDS = {"quoting": QUOTING, "summarizing": SUMMARIZING, "free": FREE_WRITING}
