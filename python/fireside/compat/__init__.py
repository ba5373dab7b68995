"""Drop-in facades for code written against other local-LLM packages."""

from fireside.compat.gpt4all import Embed4All, GPT4All

__all__ = ["Embed4All", "GPT4All"]
