"""Chat: templates that turn messages into prompts (and, in session.py, chat sessions)."""

from fireside.chat.templates import ChatTemplate, builtin_template_names

__all__ = ["ChatTemplate", "builtin_template_names"]
